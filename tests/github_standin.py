"""A STAND-IN for the GitHub REST API, for tests only. It is not GitHub.

It serves real HTTP on loopback (``http.server`` in a background thread) and implements just what
``repair_agent.ci.publish`` makes PyGithub call:

* ``GET    /repos/{owner}/{repo}``
* ``GET    /repos/{owner}/{repo}/pulls`` (``state``, ``head`` = ``owner:branch``, ``base``)
* ``POST   /repos/{owner}/{repo}/pulls``
* ``GET    /repos/{owner}/{repo}/pulls/{number}``
* ``PATCH  /repos/{owner}/{repo}/pulls/{number}``

Every request is recorded (method, path, query, headers, JSON body) in :attr:`GitHubStandIn.requests`
so tests can assert on what was sent. Failures can be injected with :meth:`GitHubStandIn.fail`.

Use::

    with GitHubStandIn() as gh:
        gh.add_repo("octo/demo", default_branch="main")
        github.Github(base_url=gh.api_url, auth=github.Auth.Token("t")).get_repo("octo/demo")
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    raw_body: str
    status: int = 0


@dataclass
class _Failure:
    method: str
    path_re: re.Pattern
    status: int
    times: int | None  # None: every time
    message: str


@dataclass
class _Repo:
    full_name: str
    default_branch: str
    pulls: dict[int, dict] = field(default_factory=dict)


class GitHubStandIn:
    """A loopback stand-in for the parts of the GitHub REST API that the CI bot uses."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self._lock = threading.Lock()
        self._repos: dict[str, _Repo] = {}
        self._failures: list[_Failure] = []
        self._next_number = 1
        self.requests: list[RecordedRequest] = []
        self._server = ThreadingHTTPServer((host, port), self._make_handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "GitHubStandIn":
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, name="github-standin", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> "GitHubStandIn":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- setup and inspection ---------------------------------------------------------------
    def add_repo(self, full_name: str, default_branch: str = "main") -> None:
        with self._lock:
            self._repos[full_name] = _Repo(full_name, default_branch)

    def fail(
        self, method: str, path_regex: str, status: int = 500, *, times: int | None = None,
        message: str = "stand-in injected failure",
    ) -> None:
        """Answer requests matching ``method`` and ``path_regex`` (``re.search``) with ``status``."""
        with self._lock:
            self._failures.append(
                _Failure(method.upper(), re.compile(path_regex), status, times, message)
            )

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    def pulls(self, full_name: str, state: str | None = None) -> list[dict]:
        """The pull requests of a repository (copies), optionally only those in ``state``."""
        with self._lock:
            repo = self._repos[full_name]
            return [
                json.loads(json.dumps(p))
                for _, p in sorted(repo.pulls.items())
                if state is None or p["state"] == state
            ]

    def requests_to(self, method: str, path_regex: str = "") -> list[RecordedRequest]:
        rx = re.compile(path_regex)
        return [r for r in self.requests if r.method == method.upper() and rx.search(r.path)]

    # -- JSON shapes ------------------------------------------------------------------------
    def _repo_json(self, repo: _Repo) -> dict:
        owner, name = repo.full_name.split("/", 1)
        base = self.api_url
        return {
            "id": abs(hash(repo.full_name)) % 10_000_000,
            "name": name,
            "full_name": repo.full_name,
            "owner": {"login": owner, "type": "Organization", "url": f"{base}/users/{owner}"},
            "private": False,
            "default_branch": repo.default_branch,
            "url": f"{base}/repos/{repo.full_name}",
            "html_url": f"https://github.invalid/{repo.full_name}",
            "pulls_url": f"{base}/repos/{repo.full_name}/pulls{{/number}}",
        }

    def _pull_json(self, repo: _Repo, number: int, body: dict) -> dict:
        owner = repo.full_name.split("/", 1)[0]
        head = body["head"]
        head_owner, head_ref = head.split(":", 1) if ":" in head else (owner, head)
        base = self.api_url
        return {
            "id": 1000 + number,
            "number": number,
            "state": "open",
            "title": body.get("title", ""),
            "body": body.get("body", ""),
            "draft": bool(body.get("draft", False)),
            "merged": False,
            "url": f"{base}/repos/{repo.full_name}/pulls/{number}",
            "html_url": f"https://github.invalid/{repo.full_name}/pull/{number}",
            "user": {"login": "repair-agent[bot]"},
            "head": {"ref": head_ref, "label": f"{head_owner}:{head_ref}", "sha": "0" * 40},
            "base": {"ref": body["base"], "label": f"{owner}:{body['base']}", "sha": "0" * 40},
        }

    # -- request handling -------------------------------------------------------------------
    def _handle(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        with self._lock:
            for f in self._failures:
                if f.method == method and f.path_re.search(path) and f.times != 0:
                    if f.times is not None:
                        f.times -= 1
                    return f.status, {"message": f.message}

            m = re.fullmatch(r"/repos/([^/]+/[^/]+)(/pulls(?:/(\d+))?)?/?", path)
            if not m:
                return 404, {"message": "Not Found (stand-in)"}
            repo = self._repos.get(m.group(1))
            if repo is None:
                return 404, {"message": "Not Found"}
            pulls_part, number = m.group(2), m.group(3)

            if pulls_part is None:
                if method == "GET":
                    return 200, self._repo_json(repo)
                return 405, {"message": "Method Not Allowed (stand-in)"}

            if number is None:
                if method == "GET":
                    state = query.get("state", "open")
                    head = query.get("head")
                    base = query.get("base")
                    out = []
                    for _, p in sorted(repo.pulls.items()):
                        if state != "all" and p["state"] != state:
                            continue
                        if head and p["head"]["label"] != head and p["head"]["ref"] != head:
                            continue
                        if base and p["base"]["ref"] != base:
                            continue
                        out.append(p)
                    return 200, out
                if method == "POST":
                    if not isinstance(body, dict) or not body.get("head") or not body.get("base"):
                        return 422, {"message": "Validation Failed: head and base are required"}
                    if not body.get("title"):
                        return 422, {"message": "Validation Failed: title is required"}
                    for p in repo.pulls.values():
                        head_ref = body["head"].split(":", 1)[-1]
                        if p["state"] == "open" and p["head"]["ref"] == head_ref:
                            return 422, {
                                "message": "Validation Failed",
                                "errors": [{"message": f"A pull request already exists for {body['head']}."}],
                            }
                    n = self._next_number
                    self._next_number += 1
                    repo.pulls[n] = self._pull_json(repo, n, body)
                    return 201, repo.pulls[n]
                return 405, {"message": "Method Not Allowed (stand-in)"}

            pr = repo.pulls.get(int(number))
            if pr is None:
                return 404, {"message": "Not Found"}
            if method == "GET":
                return 200, pr
            if method == "PATCH":
                if not isinstance(body, dict):
                    return 422, {"message": "Validation Failed"}
                for key in ("title", "body", "state"):
                    if key in body:
                        pr[key] = body[key]
                if "base" in body:
                    pr["base"]["ref"] = body["base"]
                return 200, pr
            return 405, {"message": "Method Not Allowed (stand-in)"}

    def _make_handler(self):
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8", "replace") if length else ""
                try:
                    payload = json.loads(raw) if raw else None
                except ValueError:
                    payload = None
                rec = RecordedRequest(
                    method=self.command, path=parts.path, query=query,
                    headers={k: v for k, v in self.headers.items()}, json=payload, raw_body=raw,
                )
                try:
                    status, answer = standin._handle(self.command, parts.path, query, payload)
                except Exception as exc:  # a bug in the stand-in: report it as a 500
                    status, answer = 500, {"message": f"stand-in error: {exc!r}"}
                rec.status = status
                with standin._lock:
                    standin.requests.append(rec)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        return Handler


__all__ = ["GitHubStandIn", "RecordedRequest"]
