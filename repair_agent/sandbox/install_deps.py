"""Installs a repository's dependencies inside a dependency-image build (run there by images.py with
the tools venv's Python; standard library only, so that any Python 3.8+ runs it). The host imports
its helpers too: requirement files are read here as pip reads them, on either side.

    python install_deps.py PLAN_JSON

The plan (images.env_image's, from test_deps.discover), in the order installed: `requirement_files`
(pip -r, must install), `project` (pip install . from a copy of /src, must install), `deps` (--deps,
must install), `packages` (the test dependencies found, each with its source: best effort),
`plugins` (what the pytest configuration needs: best effort); the last two under the exact pins of
the first ones as constraints, so that the pins win, `compat` (where the tests call
removed pytest APIs: pytest_compat.py's path, copied into this venv as COMPAT_MODULE). Binary
wheels are preferred. Where a step that must install fails, each exact pin of it that has no wheel
for this Python is moved to the nearest version that has one and the step is tried again; every
such move is in the report. An exact pin that the index cannot give at all (the package has no
distribution there for this Python, or the pin is a development release it lacks: an old freeze's)
is left out of such a step, with why in the report, and the rest installs. A best-effort package
that still does not install is left out, and the report says why. Where the repository's pins broke
the sandbox's own pytest (it shares this venv), its requirements are installed again over them
(keep_runner). The report (JSON) is
written to REPORT, kept in the image, and printed after MARKER as the last line.
"""

from __future__ import annotations

import codecs
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from urllib.parse import unquote

MARKER = "@@REPAIR_AGENT_DEPS@@"
COMPAT_MODULE = "repair_agent_pytest_compat"  # test_deps loads it with -p
REPORT = "/opt/repair-agent-deps.json"
CONSTRAINTS = "/tmp/repair-agent-constraints.txt"
PROBE = "/tmp/repair-agent-probe"  # where the wheel probes download to (pip's cache keeps them)
PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*([^\s;,#]+)\s*(;.*)?$")
# pip's refusal, "(from X)" naming who asked (the legacy resolver's "(from -r f.txt (line 3))") or not
FROM_VERSIONS = re.compile(r"satisfies the requirement (\S+?)(?:\[[^\]]*\])?\s*(?:[<>=!~][^ ]*)?"
                           r"(?: \(from (?!versions)(?:[^()]|\([^()]*\))*\))* \(from versions: ([^)]*)\)")
BOMS = [(codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"), (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")]  # utf-32-le's BOM begins utf-16-le's
CODING = re.compile(rb"^#.*coding[:=]\s*([-\w.]+)")


def decode(data: bytes) -> str:
    """A requirement file's text as pip decodes it: a byte-order mark names the encoding (UTF-8,
    UTF-16, UTF-32), else a `# -*- coding: X -*-` comment on one of the first two lines, else UTF-8."""
    for bom, encoding in BOMS:
        if data.startswith(bom):
            return data[len(bom):].decode(encoding, errors="replace")
    for line in data.split(b"\n")[:2]:
        m = CODING.match(line)
        if m:
            try:
                return data.decode(m.group(1).decode("ascii"), errors="replace")
            except LookupError:
                break
    return data.decode("utf-8", errors="replace")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def logical_lines(text: str) -> list[str]:
    """A requirement file's lines as pip joins them: `\\` continues a line, `#` after a space (or at
    the start) begins a comment."""
    out, pending = [], ""
    for raw in text.splitlines():
        line = pending + raw
        if line.endswith("\\"):
            pending = line[:-1]
            continue
        pending = ""
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if line:
            out.append(line)
    if pending.strip():
        out.append(pending.strip())
    return out


def _version_key(text: str):
    """An ordering key for a version; None for a pre-release or one that does not parse."""
    m = re.match(r"^v?(\d+(?:\.\d+)*)(?:\.?post\d+)?$", text.strip())
    return tuple(int(x) for x in m.group(1).split(".")) if m else None


def nearest(pinned: str, versions: list[str]) -> str | None:
    """The version to take for `pinned` among those that have a wheel: the oldest newer one (old
    pins lack wheels for a newer Python; the next release usually has them), else the newest older one."""
    want = _version_key(pinned)
    found = sorted((k, v) for v in versions if (k := _version_key(v)) is not None)
    if want is None or not found:
        return None
    newer = [v for k, v in found if k > want]
    older = [v for k, v in found if k < want]
    return newer[0] if newer else (older[-1] if older else None)


def pip(*args: str, quiet: bool = True) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-m", "pip", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace")
    if proc.returncode != 0 and not quiet:
        print(proc.stdout, flush=True)
    return proc.returncode, proc.stdout


def install(*args: str, quiet: bool = True) -> tuple[int, str]:
    return pip("install", "--prefer-binary", *args, quiet=quiet)


def last_error(output: str) -> str:
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR:")]
    return ((errors or lines or ["no output"])[-1])[:200]


NO_WHEEL = "no wheel of the pinned version for this Python"
WITHDRAWN = "the index no longer has the pinned version (it has older and newer ones)"


def without_wheels(requirements: list[str]) -> dict[str, tuple[str, str]]:
    """For each exact pin among `requirements` whose version exists but has no wheel for this Python,
    the nearest version that has one: {requirement: (the requirement at that version, why)}. pip
    lists, in its refusal, the versions it could take with binaries only; one pip call finds the
    next pin that has none. A version that the index has no file of moves only where it lies between
    versions the index has (a release taken down: youtube-dl-27's freeze pins
    mysql-connector-python==8.0.19, and PyPI has 8.0.5 and 8.0.23 but nothing between); one beyond
    them stays as it is, pip's error (a typo, most likely)."""
    pins = {}
    for req in requirements:
        m = PIN.match(req)
        if m:
            pins[canonical(m.group(1))] = (req, m)
    moved, todo = {}, dict(pins)
    while todo:
        rc, out = pip("download", "--no-deps", "--only-binary=:all:", "-d", PROBE, *[req for req, _ in todo.values()])
        found = FROM_VERSIONS.search(out)
        if rc == 0 or not found or canonical(found.group(1)) not in todo:
            break  # every pin has a wheel, or something else failed: the pins stay as they are
        req, m = todo.pop(canonical(found.group(1)))
        versions = listed_versions(found.group(2))
        other = nearest(m.group(3), versions)
        released = versions + for_other_pythons(out)  # luigi's requests-async==0.5.0: 0.2.4 here, 0.6.0 for 3.10+
        why = None if not other else NO_WHEEL if not missing(req) else WITHDRAWN if withdrawn(m.group(3), released) else None
        if why:
            moved[req] = (pinned_at(m, other), why)
    shutil.rmtree(PROBE, ignore_errors=True)
    return moved


def listed_versions(listed: str) -> list[str]:
    """The versions of pip's "(from versions: a, b)" ("none" when there are none)."""
    return [v.strip() for v in listed.split(",") if v.strip() not in ("", "none")]


def pinned_at(pin: re.Match, version: str) -> str:
    """The pin (a PIN match) at another version, its extras and marker kept."""
    return f"{pin.group(1)}{pin.group(2) or ''}=={version}{(' ' + pin.group(4)) if pin.group(4) else ''}"


def for_other_pythons(output: str) -> list[str]:
    """The versions pip's refusal says it ignored as requiring another Python (releases all the same)."""
    said = re.findall(r"Ignored the following versions that require a different python version: (.*)", output)
    return [v for line in said for v in re.findall(r"(\S+) Requires-Python", line)]


def withdrawn(pinned: str, versions: list[str]) -> bool:
    """Whether `versions` has releases both older and newer than `pinned`."""
    want, keys = _version_key(pinned), [k for v in versions if (k := _version_key(v)) is not None]
    return want is not None and any(k < want for k in keys) and any(k > want for k in keys)


def missing(requirement: str) -> bool:
    """Whether the index has no file at all of the pinned version of `requirement` (a version that
    never existed): pip finds no distribution of it, and skipped none of its files as made for
    another Python (mysql-connector-python 8.0.19 has wheels for Python 2.7 to 3.8 only: a release,
    whose pin moves; youtube-dl-27's freeze)."""
    m = PIN.match(requirement)
    out = pip("download", "--no-deps", "-vv", "-d", PROBE, requirement)[1]  # -vv: pip names the links it skips
    name = canonical(m.group(1))
    if not any(canonical(requirement_name(x)) == name for x in re.findall(r"No matching distribution found for (\S+)", out)):
        return False
    return not any(file_release(url) == (name, m.group(3).lower()) for url in SKIPPED.findall(out))


SKIPPED = re.compile(r"Skipping link: .*?((?:https?|file)://[^\s#]+)")  # the file's link; its index page after it
ARCHIVES = (".tar.gz", ".tar.bz2", ".tgz", ".zip")


def file_release(url: str) -> tuple[str, str] | None:
    """(canonical name, version) of a distribution file's URL: a wheel's `name-version-tags.whl`, a
    source archive's `name-version.tar.gz`; None for anything else."""
    file = unquote(url.split("#")[0].rsplit("/", 1)[-1])
    if file.endswith(".whl") and file.count("-") >= 4:
        name, version = file.split("-")[:2]
    elif (archive := next((a for a in ARCHIVES if file.endswith(a)), None)) and "-" in file:
        name, version = file[:-len(archive)].rsplit("-", 1)
    else:
        return None
    return canonical(name), version.lower()


UNREACHABLE = re.compile(r"Retrying \(|NewConnectionError|Could not fetch URL")  # pip's words when the index failed
DEV_RELEASE = re.compile(r"\.?dev\d*$")


def not_on_index(output: str, requirements: list[str]) -> dict[str, str]:
    """The exact pins among `requirements` that pip's failed install says the index has no
    distribution for at all, {requirement: why}: a package gone from the index, or with none for
    this Python (youtube-dl's freeze of 2014 pins PythonLabs==1.0.2, which PyPI no longer has), and a
    development release that the index lacks (it was installed from a checkout: ansible's freeze pins
    ansible-base==2.10.0.dev0). A version that was never released stays an error (a typo, most
    likely), as does everything where pip could not reach the index: its `none` is no answer then."""
    if UNREACHABLE.search(output):
        return {}
    pins = {canonical(m.group(1)): (r, m.group(3)) for r in requirements if (m := PIN.match(r))}
    gone = {}
    for name, listed in FROM_VERSIONS.findall(output):
        requirement, version = pins.get(canonical(name), (None, None))
        versions = listed_versions(listed)
        if requirement is None or version in versions:
            continue
        if not versions:
            gone[requirement] = "the index has no distribution of it for this Python (pip: from versions: none)"
        elif DEV_RELEASE.search(version):
            gone[requirement] = "a development release (installed from a checkout) that the index does not have"
    return gone


def taken_down(output: str, requirements: list[str]) -> dict[str, str]:
    """The exact pins among `requirements` that pip's failed install refused as a release the index no
    longer has, between releases it has (for this Python or another), each with the nearest version
    pip listed as installable here: {requirement: the requirement at that version}. luigi's freeze
    pins requests-async==0.5.0; PyPI has 0.2.4 (a source archive) and 0.6.0 for Python 3.10+."""
    pins = {canonical(m.group(1)): (r, m) for r in requirements if (m := PIN.match(r))}
    moved = {}
    for name, listed in FROM_VERSIONS.findall(output):
        requirement, m = pins.get(canonical(name), (None, None))
        versions = listed_versions(listed)
        if requirement and m.group(3) not in versions and withdrawn(m.group(3), versions + for_other_pythons(output)):
            if other := nearest(m.group(3), versions):
                moved[requirement] = pinned_at(m, other)
    return moved


def requirement_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[@(]", requirement.strip(), maxsplit=1)[0]


def file_pins(path: str, seen: set | None = None) -> list[tuple[str, str]]:
    """(file, requirement line) of every line of the requirement file `path` and the files it
    includes (-r), as pip reads them."""
    seen = set() if seen is None else seen
    if path in seen or not os.path.isfile(path):
        return []
    seen.add(path)
    with open(path, "rb") as f:
        lines = logical_lines(decode(f.read()))
    out = []
    for line in lines:
        m = re.match(r"^(?:-r|--requirement)(?:\s+|=)(\S+)", line)
        if m:
            out += file_pins(os.path.join(os.path.dirname(path), m.group(1)), seen)
        elif not line.startswith("-"):
            out.append((path, line))
    return out


def rewrite(files: list[str], moved: dict[str, str]) -> None:
    """Write the moved pins into the requirement files (copies under /tmp/src), UTF-8; a pin moved
    to "" is left out."""
    by_file: dict[str, list[tuple[str, str]]] = {}
    for path, line in [p for f in files for p in file_pins(f)]:
        if line in moved:
            by_file.setdefault(path, []).append((line, moved[line]))
    for path, pairs in by_file.items():
        with open(path, "rb") as f:
            text = decode(f.read())
        for old, new in pairs:  # the whole requirement, not the start of a longer one (x==1.0 of x==1.0.1)
            text = re.sub(rf"(?m)^\s*{re.escape(old)}(?=\s|$)", new, text)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)


FAILED_NAMES = [re.compile(p) for p in (r"Failed (?:to build|building wheel for) ([A-Za-z0-9][\w.-]*)",
                                         r"satisfies the requirement ([A-Za-z0-9][\w.-]*)")]
COLLECTING = re.compile(r"^\s*Collecting ([A-Za-z0-9][\w.-]*)")


def failed_pins(output: str, requirements: list[str]) -> list[str]:
    """The requirements that pip's failed install names: a build that failed, a version not found,
    or the package it was collecting when its metadata could not be prepared."""
    names = set()
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if "ERROR" in line or "error" in line.lower():
            names.update(canonical(m.group(1)) for p in FAILED_NAMES for m in [p.search(line)] if m)
            if "metadata" in line.lower() and (collecting := [c for ln in lines[:i] if (c := COLLECTING.match(ln))]):
                names.add(canonical(collecting[-1].group(1)))
    return [r for r in requirements if canonical(requirement_name(r)) in names]


LEGACY = "--use-deprecated=legacy-resolver"


def must_install(what: str, args: list[str], requirements: list[str], report: dict, source: str,
                 files: list[str] = ()) -> list[str]:
    """Install, else leave out the pins the index has nothing for (not_on_index) or move the pins
    without a wheel for this Python, and try again, else stop the build with pip's own words (exit 1).
    The pins probed are those pip's failure names, one failure after another (an old freeze has many
    pins without a wheel that still install from source); where it names none of them, every pin at once."""
    rc, out = install(*args)
    tried: set[str] = set()
    while rc != 0:
        if "ResolutionImpossible" in out and LEGACY not in args:
            # pins that contradict each other (an old freeze: pip's resolver before 20.3 installed them
            # one by one), at once or only once a pin moved to another version (sanic-1's freeze):
            # pip's legacy resolver installs them as they were installed then
            args = [LEGACY, *args]
            report.setdefault("legacy_resolver", []).append(source)
            rc, out = install(*args)
            continue
        if gone := not_on_index(out, requirements):
            report["failed"] += [{"requirement": r, "source": source, "why": why} for r, why in gone.items()]
            if files:
                rewrite(list(files), dict.fromkeys(gone, ""))
            else:
                args = [a for a in args if a not in gone]
            requirements = [r for r in requirements if r not in gone]
            rc, out = install(*args) if any(not a.startswith("-") for a in args) else (0, "")
            continue
        named = [r for r in failed_pins(out, requirements) if r not in tried]
        probe = named or ([] if tried else requirements)
        tried.update(probe)
        moved = {old: (new, WITHDRAWN) for old, new in taken_down(out, probe).items()} or \
            (without_wheels(probe) if probe else {})
        if not moved:
            break
        report["replaced"] += [{"requirement": old, "with": new, "source": source, "why": why}
                               for old, (new, why) in moved.items()]
        moved = {old: new for old, (new, _) in moved.items()}
        if files:
            rewrite(list(files), moved)
        else:
            args = [moved.get(a, a) for a in args]
        requirements = [moved.get(r, r) for r in requirements]
        tried.update(moved.values())
        rc, out = install(*args)
    if rc == 0:
        return args
    print(out, flush=True)
    print(f"{what} failed", flush=True)
    finish(report, 1)


def constraints(requirements: list[str]) -> list[str]:
    """pip's options that keep the exact pins among `requirements` as they are (a constraints file):
    a test dependency found beside them must fit them, not replace them."""
    pins = [f"{m.group(1)}=={m.group(3)}{(' ' + m.group(4)) if m.group(4) else ''}"
            for r in requirements if (m := PIN.match(r))]  # a constraint has no extras
    if not pins:
        return []
    with open(CONSTRAINTS, "w", encoding="utf-8") as f:
        f.write("\n".join(pins) + "\n")
    return ["-c", CONSTRAINTS]


def best_effort(items: list[dict], key: str, report: dict, done: str, options: list[str] = ()) -> None:
    """Install every item (one pip call; where it fails, pins moved as above, then one by one):
    those that do not install are left out, with pip's last error line. `options`: pip's, for each call."""
    reqs = [i[key] for i in items]
    if not reqs or install(*options, *reqs)[0] == 0:
        report[done] += items
        return
    moved = without_wheels(reqs)
    for item in items:
        req, why = moved.get(item[key], (item[key], ""))
        if req != item[key]:
            report["replaced"].append({"requirement": item[key], "with": req, "source": item.get("source", ""),
                                       "why": why})
        rc, out = install(*options, req)
        if rc == 0:
            report[done].append({**item, key: req})
        else:
            report["failed"].append({**item, "why": last_error(out)})


def project_options(tree: str) -> list[str]:
    """pip's options for installing the project: a setup.py project that names no build system
    (no `[build-system]` in a pyproject.toml) is built in this venv, as pip built it before 23.1;
    an isolated build would fetch setuptools from the index, which a machine offline does not have."""
    try:
        with open(os.path.join(tree, "pyproject.toml"), encoding="utf-8", errors="replace") as f:
            declared = re.search(r"(?m)^\s*\[build-system\]", f.read())
    except OSError:
        declared = None
    return [] if declared else ["--no-build-isolation"]


def from_tree(roots: list[str], report: dict) -> None:
    """The project's packages that live in `roots` (folders of the tree, not its root or src/) are
    imported from the tree under test (/workspace), not from the copy `pip install .` made now:
    that copy is uninstalled (its dependencies stay) and a .pth file puts those folders on the path."""
    from importlib import metadata

    tops = {p.split(os.sep)[0] for r in roots if os.path.isdir(r) for p in os.listdir(r)}
    tops = {t[:-3] if t.endswith(".py") else t for t in tops}
    owners = sorted({d.metadata["Name"] for d in metadata.distributions()
                     if any(str(f).split("/")[0] in tops for f in (d.files or []) if not str(f).endswith(".dist-info"))
                     and d.metadata["Name"] and canonical(d.metadata["Name"]) not in {"pip", "setuptools", "wheel"}})
    if owners:
        pip("uninstall", "-y", *owners)
    paths = [f"/workspace/{r}" for r in roots]
    # an `import` line, not the folders: site.py skips a folder that does not exist yet, and the
    # warm worker starts before /workspace is filled
    with open(os.path.join(sysconfig.get_paths()["purelib"], "repair_agent_tree.pth"), "w", encoding="utf-8") as f:
        f.write(f"import sys; sys.path.extend(p for p in {paths!r} if p not in sys.path)\n")
    report["tree_paths"] = paths
    report["uninstalled"] = owners


RUNNER = ("pytest", "pytest-timeout", "coverage")  # images.TOOLS: the sandbox's test runner, in this venv too


def keep_runner(report: dict) -> None:
    """The sandbox's test runner shares this venv, and a pin of the repository's can break what it
    needs (black's and luigi's freezes pin typing-extensions 3.7.4, and pytest's exceptiongroup
    imports its `Self`, new in 4.6: no test ran). Where pytest no longer imports, its requirements
    are installed again over those pins; what moved is in the report (`runner`)."""
    if subprocess.run([sys.executable, "-c", "import pytest"], capture_output=True).returncode == 0:
        return
    before = installed_versions()
    rc, out = install(*RUNNER)
    after = installed_versions()
    report["runner"] = [f"{name} {before.get(name, 'none')} -> {version}" for name, version in sorted(after.items())
                        if before.get(name) != version] or [f"pytest does not import: {last_error(out)}"]


def installed_versions() -> dict[str, str]:
    from importlib import metadata

    return {canonical(d.metadata["Name"]): d.version for d in metadata.distributions() if d.metadata["Name"]}


def finish(report: dict, code: int) -> None:
    text = json.dumps(report, sort_keys=True)
    try:
        with open(REPORT, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError:
        pass
    print(MARKER + " " + text, flush=True)
    sys.exit(code)


def main(plan: dict) -> None:
    report = {"installed": [], "plugins": [], "failed": [], "replaced": []}
    files = list(plan.get("requirement_files") or [])
    if files or plan.get("project"):
        try:
            shutil.copytree("/src", "/tmp/src", symlinks=True)  # pins may be rewritten, `-e .` writes: a copy
        except shutil.Error as exc:  # git packed loose objects while they were copied (ansible-6): its
            if any(not str(e[0]).startswith("/src/.git/") for e in exc.args[0]):  # objects only, else a fault
                raise
        os.chdir("/tmp/src")
    if files:
        pins = [line for f in files for _, line in file_pins(f)]
        must_install("installing " + " ".join(files), [a for f in files for a in ("-r", f)], pins, report,
                     " ".join(files), files)
    if plan.get("project"):
        rc, out = install(*project_options("."), ".")
        if rc != 0:
            print(out, flush=True)
            finish(report, 1)
    deps = list(plan.get("deps") or [])
    if deps:  # before the test dependencies found: those must fit the pins (an old freeze's among them)
        deps = [a for a in must_install("installing --deps", deps, deps, report, "--deps") if not a.startswith("-")]
    pinned = constraints([line for f in files for _, line in file_pins(f)] + deps)
    best_effort(plan.get("packages") or [], "requirement", report, "installed", pinned)
    best_effort(plan.get("plugins") or [], "plugin", report, "plugins", pinned)
    if plan.get("package_roots"):
        from_tree(plan["package_roots"], report)
    keep_runner(report)
    if plan.get("compat"):
        shutil.copy(plan["compat"], os.path.join(sysconfig.get_paths()["purelib"], COMPAT_MODULE + ".py"))
    finish(report, 0)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
