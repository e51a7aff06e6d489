from repair_agent.redact import MASK, is_secret_name, redact, safe_env, secrets_from_env

ENV = {
    "GITHUB_TOKEN": "ghs_abcdefghijklmnopqrstuvwxyz012345",
    "GH_TOKEN": "gh-token-value",
    "REPAIR_AGENT_API_KEY": "ra-key-1234",
    "OPENAI_API_KEY": "oa-key-5678",
    "MY_SERVICE_SECRET": "s3cr3t-value",
    "DB_PASSWORD": "hunter2hunter2",
    "SHORT_KEY": "1234567",  # under 8 characters: not treated as a secret value
    "PATH": "/usr/bin:/bin",
    "HOME": "/home/me",
    "TOKENIZER": "bpe-tokenizer-name",  # no _TOKEN suffix
}


def test_secrets_from_env_picks_names_and_suffixes():
    found = secrets_from_env(ENV)
    for name in ("GITHUB_TOKEN", "GH_TOKEN", "REPAIR_AGENT_API_KEY", "OPENAI_API_KEY",
                 "MY_SERVICE_SECRET", "DB_PASSWORD"):
        assert ENV[name] in found
    assert "1234567" not in found
    assert "/usr/bin:/bin" not in found and "bpe-tokenizer-name" not in found
    assert found == sorted(found, key=len, reverse=True)


def test_secrets_from_env_defaults_to_os_environ(monkeypatch):
    monkeypatch.setenv("SOME_DEPLOY_TOKEN", "deploy-0123456789")
    assert "deploy-0123456789" in secrets_from_env()


def test_redact_replaces_every_occurrence():
    text = f"push with {ENV['GITHUB_TOKEN']} and {ENV['OPENAI_API_KEY']}; again {ENV['GITHUB_TOKEN']}"
    out = redact(text, secrets_from_env(ENV))
    assert ENV["GITHUB_TOKEN"] not in out and ENV["OPENAI_API_KEY"] not in out
    assert out.count(MASK) == 3


def test_redact_uses_env_by_default(monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "plain-token-value-42")
    assert redact("token=plain-token-value-42") == f"token={MASK}"


def test_redact_explicit_secrets_and_overlaps():
    assert redact("abcdef abcdefgh", ["abcdef", "abcdefgh"]) == f"{MASK} {MASK}"
    assert redact("nothing here", []) == "nothing here"


def test_redact_known_shapes_and_url_credentials():
    out = redact(
        "https://x-access-token:abc123@github.com/o/r.git ghp_" + "A" * 36
        + " Authorization: Bearer zzz.yyy",
        [],
    )
    assert "abc123" not in out and "ghp_" not in out and "zzz.yyy" not in out
    assert "https://***@github.com/o/r.git" in out
    # ordinary URLs and e-mail addresses are kept
    assert redact("see https://github.com/o/r and mail a@b.example", []) == (
        "see https://github.com/o/r and mail a@b.example"
    )


def test_safe_env_drops_secret_variables_by_name():
    env = safe_env(ENV)
    assert env == {"PATH": "/usr/bin:/bin", "HOME": "/home/me", "TOKENIZER": "bpe-tokenizer-name"}
    assert "SHORT_KEY" not in env  # dropped by name whatever its length
    assert is_secret_name("github_token") and not is_secret_name("KEYBOARD")


def test_safe_env_defaults_to_os_environ(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-whatever-123456")
    monkeypatch.setenv("HARMLESS", "1")
    env = safe_env()
    assert "OPENAI_API_KEY" not in env and env["HARMLESS"] == "1"
