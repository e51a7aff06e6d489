"""What the CI bot writes: branch names and markers, the commit message, the pull request's title and
body, and the job summaries (markdown). Pure functions of a `fix` result; ci/publish.py sends them."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

BRANCH_PREFIX = "repair-agent/"
MARKER_RE = re.compile(r"<!-- repair-agent: base=([0-9a-f]{7,40}) failing=([0-9a-f]{64}) -->")
MACHINE_MADE = (
    "This change was made by a machine (repair-agent) and must be reviewed by a human before it "
    "is merged."
)
_BODY_LIMIT = 60_000  # GitHub rejects bodies over 65,536 characters
_SUMMARY_PATCH_LIMIT = 20_000  # characters of one candidate's diff in the job summary
_SLUG_MAX = 40


def failing_tests(result: dict) -> list[str]:
    """The tests that failed before the fix, sorted (stable across runs)."""
    before = result.get("tests_before") or {}
    return sorted({str(t) for t in (before.get("failing") or [])})


def failing_digest(failing: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(failing)).encode("utf-8")).hexdigest()


def marker(base_sha: str, failing: list[str]) -> str:
    """The hidden marker that identifies repair-agent's pull request for a base and a failure."""
    return f"<!-- repair-agent: base={base_sha} failing={failing_digest(failing)} -->"


def slugify(text: str, max_len: int = _SLUG_MAX) -> str:
    """A git-ref-safe slug: lower-case letters, digits and single hyphens."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    if len(slug) > max_len:
        cut = slug[:max_len]
        slug = cut.rsplit("-", 1)[0] if "-" in cut[max_len // 2:] else cut
    return slug.strip("-") or "tests"


def slug_for_test(test_id: str) -> str:
    """``tests/unit/test_calc.py::TestAdd::test_two[1-2]`` -> ``test-calc-testadd-test-two-1-2``."""
    path, _, rest = test_id.partition("::")
    name = path.rsplit("/", 1)[-1]
    name = name[:-3] if name.endswith(".py") else name
    return slugify(f"{name}-{rest}" if rest else name)


def branch_name(base_sha: str, failing: list[str]) -> str:
    first = failing[0] if failing else "tests"
    return f"{BRANCH_PREFIX}{base_sha[:7]}-{slug_for_test(first)}"


def _subject(failing: list[str]) -> str:
    if not failing:
        return "Fix failing tests"
    subject = f"Fix failing test {failing[0]}"
    if len(failing) > 1:
        subject += f" (+{len(failing) - 1} more)"
    if len(subject) > 72:
        subject = subject[:69].rstrip() + "..."
    return subject


def _counts(tests: dict | None) -> dict[str, int]:
    tests = tests or {}
    return {k: int(tests.get(k) or 0) for k in ("passed", "failed", "errors", "skipped")}


def _tests_table(result: dict) -> str:
    rows = ["| | passed | failed | errors | skipped |", "|---|---:|---:|---:|---:|"]
    for label, key in (("before", "tests_before"), ("after", "tests_after")):
        if result.get(key) is None:
            continue
        c = _counts(result.get(key))
        rows.append(f"| {label} | {c['passed']} | {c['failed']} | {c['errors']} | {c['skipped']} |")
    return "\n".join(rows)


def _bullets(items: list[str], limit: int = 50) -> str:
    lines = [f"- `{t}`" for t in items[:limit]]
    if len(items) > limit:
        lines.append(f"- ... and {len(items) - limit} more")
    return "\n".join(lines) if lines else "- (none)"


def _fence(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`{3,}", text)), default=2)
    return "`" * max(3, longest + 1)


def _rounds(result: dict) -> int:
    rounds = result.get("rounds") or 0
    return len(rounds) if isinstance(rounds, (list, tuple)) else int(rounds)


def _run_lines(result: dict) -> str:
    tokens = result.get("tokens") or {}
    lines = [
        f"- model: `{result.get('model') or 'unknown'}`",
        f"- tokens: prompt {int(tokens.get('prompt') or 0)}, "
        f"completion {int(tokens.get('completion') or 0)}",
        f"- rounds: {_rounds(result)}",
    ]
    if result.get("stop_reason"):
        lines.append(f"- stopped: {result['stop_reason']}")
    if result.get("duration_s") is not None:
        lines.append(f"- duration: {float(result['duration_s']):.1f} s")
    if result.get("run_id"):
        lines.append(f"- run id: `{result['run_id']}`")
    return "\n".join(lines)


def commit_message(result: dict, *, pull_request: bool = True) -> str:
    """The fix's commit message. A pull request's lists the failing tests and asks for a review;
    `fix --branch`'s (pull_request=False) says what validated the fix."""
    if pull_request:
        failing = failing_tests(result)
        root = (result.get("root_cause") or "").strip() or "(no explanation given)"
        parts = [
            _subject(failing),
            "Root cause:\n" + root,
            "Failing tests before this change:\n" + "\n".join(f"- {t}" for t in failing or ["(none)"]),
            f"Made by repair-agent (model {result.get('model') or 'unknown'}, "
            f"run {result.get('run_id') or '-'}); review before merging.",
        ]
    else:
        failing = result["tests_before"]["failing"]
        parts = [
            f"Fix {failing[0] if failing else 'failing tests'}",
            f"Root cause: {result['root_cause'] or '(the model gave no root cause)'}",
            f"Validated by repair-agent: {result['tests_after']['passed']} tests pass (run {result['run_id']}).",
        ]
    return "\n\n".join(parts) + "\n"


def pr_title(result: dict) -> str:
    return _subject(failing_tests(result))


def pr_body(result: dict, base_sha: str, base_branch: str | None) -> str:
    failing = failing_tests(result)
    patch = result.get("patch") or ""
    root = (result.get("root_cause") or "").strip() or "(no explanation given)"
    still = sorted((result.get("tests_after") or {}).get("failing") or [])
    head = [
        f"## repair-agent: fix for `{failing[0]}`" if failing else "## repair-agent: fix",
        "",
        f"> **Machine-made change.** {MACHINE_MADE}",
        "",
        "### Root cause",
        "",
        root,
        "",
        *_evidence_lines(result),
        *_confidence_lines(result),
        "### Tests",
        "",
        _tests_table(result),
        "",
        "Failing before:",
        _bullets(failing),
    ]
    if still:
        head += ["", "Still failing after:", _bullets(still)]
    tail = [
        "",
        "### Run",
        "",
        _run_lines(result),
        f"- base: `{base_sha}`" + (f" (`{base_branch}`)" if base_branch else ""),
        "",
        marker(base_sha, failing),
        "",
    ]
    fence = _fence(patch)
    budget = _BODY_LIMIT - len("\n".join(head + tail)) - 200
    shown = patch if len(patch) <= budget else patch[: max(budget, 0)]
    diff = ["", "### Patch", "", f"{fence}diff", shown.rstrip("\n"), fence]
    if shown is not patch:
        diff.append("\n_The diff is truncated here; the full change is on the branch._")
    return "\n".join(head + diff + tail)


def _evidence_lines(result: dict) -> list[str]:
    """What the traces showed the fix changed, and how the explanation above fared in its check."""
    lines = []
    if (result.get("evidence") or {}).get("text"):
        text = result["evidence"]["text"]
        fence = _fence(text)
        lines += ["Evidence, read from the real execution of the failing test before and after the fix:", "",
                  f"{fence}text", text, fence, ""]
    explained = result.get("explanation") or {}
    if check := explained.get("check"):
        verdict = ("set aside: the root cause above is written from the evidence" if explained.get("replaced")
                   else "kept")
        lines += [f"The model's explanation, checked against the traces and the code: {check['checked']} claim(s), "
                  f"{check['contradicted']} false (faithfulness {check['score']}); {verdict}.", ""]
    return lines


def _confidence_lines(result: dict) -> list[str]:
    """The overfitting guard's verdict, for a pull request's body (nothing for an older result)."""
    if not result.get("confidence"):
        return []
    lines = ["### Confidence", "", f"**{result['confidence']}**: "
             f"{(result.get('confidence_reason') or '').strip() or '(no reason given)'}"]
    text = (result.get("disagreement") or {}).get("text")
    if text:
        lines.append(f"First disagreement: `{text}`")
    guard = (result.get("search") or {}).get("guard") or {}
    if guard.get("functions"):  # what the verdict rests on
        names = ", ".join(f"`{f}`" for f in guard["functions"])
        lines += ["", f"Checked: {names} run with each plausible patch on {guard.get('compared_tests', 0)} "
                      f"input(s) from the tests and {guard.get('compared_generated', 0)} generated."]
    return lines + [""] + _deciding_test_lines(result)


def _deciding_test_lines(result: dict) -> list[str]:
    """The test fix wrote where the plausible patches disagree (deciding_test.py), as a suggestion:
    never added to the branch unasked, as its expected value is only the chosen patch's."""
    test = result.get("deciding_test") or {}
    try:
        text = Path(test["file"]).read_text(encoding="utf-8") if test else ""
    except OSError:  # the run directory is gone
        return []
    if not text:
        return []
    fence = _fence(text)
    return [f"A test that would decide between the plausible patches, not added: check its expected value "
            f"(the chosen patch's), then add it as `{test['path']}`:", "", f"{fence}python", text.rstrip("\n"),
            fence, ""]


def candidates_markdown(result: dict, min_confidence: str) -> str:
    """The job summary when a fix is held back: the guard's verdict, the diagnosis, and every
    plausible patch (the chosen one first) with what the guard counted against it."""
    confidence = result.get("confidence") or "unknown"
    plausible = (result.get("search") or {}).get("plausible") or []
    if not plausible and result.get("patch"):
        plausible = [{"source": result.get("source") or "refine", "patch": result["patch"]}]
    lines = [
        f"## repair-agent: a fix, but no pull request (confidence: `{confidence}`)",
        "",
        f"repair-agent found {len(plausible)} plausible patch(es) that pass the full test suite, but its "
        f"confidence that the chosen one is correct is **{confidence}**, below `--min-confidence "
        f"{min_confidence}`. No branch was pushed and no pull request was opened; review the candidates "
        "below.",
        "",
        f"**Why:** {(result.get('confidence_reason') or '').strip() or '(no reason given)'}",
    ]
    disagreement = result.get("disagreement") or {}
    if disagreement.get("text"):
        lines += ["", f"**First disagreement** ({disagreement.get('kind', '')}): `{disagreement['text']}`"]
    if test := _deciding_test_lines(result):
        lines += ["", *test]
    if (result.get("root_cause") or "").strip():
        lines += ["", "### Diagnosis", "", result["root_cause"].strip()]
    lines += ["", "### Candidates"]
    for n, cand in enumerate(plausible, 1):
        where = f"{cand['file']}:{cand['line']}" if cand.get("file") else ""
        note = f"`{cand['note']}`" if cand.get("note") else ""
        head = ", ".join(x for x in (cand.get("source") or "", where, note) if x)
        lines += ["", f"#### Patch #{n}" + (" (the guard's choice)" if n == 1 else "") + (f": {head}" if head else "")]
        g = cand.get("guard")
        if g:
            lines.append(f"outvoted on {g.get('outvoted', 0)} input(s); changes {g.get('passing_changed', 0)} call(s) "
                         f"made by tests that passed; fails {g.get('examples_failed', 0)} docstring example(s)")
        patch = cand.get("patch") or ""
        shown = patch if len(patch) <= _SUMMARY_PATCH_LIMIT else patch[:_SUMMARY_PATCH_LIMIT]
        fence = _fence(shown)
        lines += ["", f"{fence}diff", shown.rstrip("\n"), fence]
        if shown is not patch:
            lines.append("_The diff is truncated here._")
    lines += ["", "### Tests", "", _tests_table(result), "", "### Run", "", _run_lines(result), ""]
    return "\n".join(lines)


def diagnosis_markdown(result: dict) -> str:
    status = result.get("status") or "unknown"
    failing = sorted((result.get("tests_before") or {}).get("failing") or [])
    still = sorted((result.get("tests_after") or {}).get("failing") or [])
    why = {
        "not_fixed": "repair-agent did not find a change that makes the failing tests pass.",
        "no_failures": "The tests pass: there is nothing to repair.",
        "error": "The repair run ended with an error.",
        "fixed": "The result says fixed but carries no patch.",
    }.get(status, f"The repair run ended with status {status!r}.")
    lines = [
        f"## repair-agent: no fix (status: `{status}`)",
        "",
        why + " No branch was pushed and no pull request was opened.",
    ]
    if result.get("error"):
        lines += ["", "### Error", "", str(result["error"]).strip()]
    if (result.get("root_cause") or "").strip():
        lines += ["", "### Diagnosis", "", result["root_cause"].strip()]
    if result.get("tests_before") is not None or result.get("tests_after") is not None:
        lines += ["", "### Tests", "", _tests_table(result)]
        if failing:
            lines += ["", "Failing:", _bullets(failing)]
        if still and still != failing:
            lines += ["", "Still failing after the last attempt:", _bullets(still)]
    lines += ["", "### Run", "", _run_lines(result), ""]
    return "\n".join(lines)


def published_markdown(result: dict, done: dict) -> str:
    """The job summary when a pull request was opened or updated (``done``: what publish_fix did)."""
    return (
        f"## repair-agent: fix proposed\n\n"
        f"Pull request [#{done['pr_number']}]({done['pr_url']}) ({done['action']}), branch `{done['branch']}`, "
        f"commit `{done['commit'][:12]}` on `{done['base']}`.\n\n"
        f"### Root cause\n\n{(result.get('root_cause') or '').strip() or '(none given)'}\n\n"
        f"### Tests\n\n{_tests_table(result)}\n\n> {MACHINE_MADE}\n"
    )
