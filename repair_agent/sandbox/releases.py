"""Which Debian release's Python a project should run on: `fix`, `explain` and `ci` ask the
repository (python_for); `bench bugsinpy` the Python a bug was recorded on (release_for).

The base images are debootstrapped Debian releases (build-base.sh), each with its own python3. The
mirror here serves these three; buster (3.7) is gone from it. BugsInPy's bugs were recorded on
Python 3.6-3.8, and old projects pin dependencies that no longer install on a new Python: the
closest Python that is not older than the one asked for is the best guess (new syntax fails on an
older Python; an old project usually still runs one or two versions up).
"""

from __future__ import annotations

import configparser
import re
import sys
from pathlib import Path

RELEASES = {"bullseye": (3, 9), "bookworm": (3, 11), "trixie": (3, 13)}  # release -> its python3
DEFAULT_RELEASE = "bookworm"
CLASSIFIER = re.compile(r"^Programming Language :: Python :: (\d+)\.(\d+)$")


def base_tag(release: str, compiler: bool = False) -> str:
    """Our base image of `release`; `-cc`: with a C compiler and the Python headers, for pins that
    have no wheel for the release's Python (BugsInPy's old pins, e.g. thefuck's psutil==5.7.0)."""
    return f"repair-agent/base:{release}{'-cc' if compiler else ''}"


def read_base_tag(tag: str) -> tuple[str, bool] | None:
    """`(release, compiler)` of one of our base tags (`repair-agent/base:bullseye-cc`), else None."""
    name = tag.rsplit(":", 1)[-1] if tag.startswith("repair-agent/base:") else ""
    release, compiler = (name[:-3], True) if name.endswith("-cc") else (name, False)
    return (release, compiler) if release in RELEASES else None


def release_for(python_version: str | None = None, requires_python: str | None = None,
                classifiers: list[str] | tuple[str, ...] = ()) -> str:
    """The release for a project: from the Python it was run on (BugsInPy's `python_version`), else
    its `requires-python`, else the newest Python its classifiers name, else DEFAULT_RELEASE."""
    if python_version and (wanted := _version(python_version)):
        return closest_release(wanted)
    if requires_python and (fits := [r for r, v in RELEASES.items() if _allows(requires_python, v)]):
        return fits[0]  # the oldest that it allows: an old project's pins install there best
    named = [(int(m[1]), int(m[2])) for c in classifiers if (m := CLASSIFIER.match(c.strip()))]
    if named:
        return closest_release(max(named))
    return DEFAULT_RELEASE


def check_python(asked: str | None, image: str | None = None) -> None:
    """Refuse a --python that is not X.Y, or one given with --image (the image has its own Python)."""
    from ..errors import BadInput

    if asked and not re.fullmatch(r"\s*\d+\.\d+\s*", asked):
        raise BadInput(f"--python {asked}: give a version X.Y, e.g. 3.9")
    if asked and image:
        raise BadInput(f"--python {asked} and --image {image} exclude each other: the image has its own Python")


def sandbox_image(repo: Path, asked: str | None = None, image: str | None = None) -> tuple[str, str | None, str]:
    """`(image, python, why)` of the Docker sandbox for the tree `repo`: `image` as given (its Python
    known when it is one of our bases), else our base of python_for's release."""
    check_python(asked, image)
    if image:
        ours = read_base_tag(image)
        return image, dotted(ours[0]) if ours else None, f"the image given: {image}"
    release, why = python_for(repo, asked)
    return base_tag(release), dotted(release), why


def local_python() -> tuple[str, str]:
    """`(python, why)` of the local sandbox, which runs this machine's Python."""
    return f"{sys.version_info[0]}.{sys.version_info[1]}", "the local sandbox runs this machine's Python"


def dotted(release: str) -> str:
    return ".".join(map(str, RELEASES[release]))


def python_for(repo: Path, asked: str | None = None) -> tuple[str, str]:
    """`(release, why)`: the release whose Python runs the tests of the tree `repo`, and what chose it.
    `asked` (X.Y, --python) comes first; then the repository's own word, the first found of
    requires-python (pyproject.toml, setup.cfg, setup.py), its classifiers, .python-version and
    tox.ini's envlist: the oldest release with a Python it supports (new syntax fails on an older
    Python, old pins on a newer one). DEFAULT_RELEASE when it says nothing."""
    if asked:
        release = closest_release(wanted := _version(asked))
        return release, f"--python {asked.strip()}" + ("" if RELEASES[release] == wanted else
                                                       " (no base has it: the closest newer)")
    repo = Path(repo)
    spec, where = requires_python(repo)
    if spec:
        fits = [r for r in by_age() if _allows(spec, RELEASES[r])]
        if fits:
            return fits[0], f'requires-python "{spec}" in {where}'
        floor = next(((3, minor) for minor in range(40) if _allows(spec, (3, minor))), None)
        if floor:  # e.g. ">=3.6,<3.9": none of ours; the closest
            return closest_release(floor), f'requires-python "{spec}" in {where} (no base has a Python it allows)'
    for where, named in (classifier_pythons(repo), python_version_file(repo), tox_pythons(repo)):
        if named:
            ours = [r for r in by_age() if RELEASES[r] in named]
            versions = ", ".join(f"{a}.{b}" for a, b in sorted(set(named)))
            return ours[0] if ours else closest_release(max(named)), f"{where}: Python {versions}"
    return DEFAULT_RELEASE, "the repository names no Python: the default"


def by_age() -> list[str]:
    return sorted(RELEASES, key=RELEASES.get)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    except OSError:
        return ""


def _config(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error:  # not plain to read: as if absent
        return configparser.ConfigParser()
    return parser


def _pyproject(repo: Path) -> dict:
    from ..config import tomllib

    try:
        return tomllib.loads(_read(repo / "pyproject.toml")).get("project") or {}
    except tomllib.TOMLDecodeError:
        return {}


SETUP_PY_REQUIRES = re.compile(r"""python_requires\s*=\s*["']([^"']+)["']""")


def requires_python(repo: Path) -> tuple[str | None, str]:
    """The requires-python specifier and the file that gives it: pyproject.toml's [project],
    setup.cfg's [options], or a literal in setup.py."""
    spec = _pyproject(repo).get("requires-python")
    if isinstance(spec, str) and spec.strip():
        return spec.strip(), "pyproject.toml"
    spec = _config(_read(repo / "setup.cfg")).get("options", "python_requires", fallback="").strip()
    if spec:
        return spec, "setup.cfg"
    m = SETUP_PY_REQUIRES.search(_read(repo / "setup.py"))
    return (m[1].strip(), "setup.py") if m else (None, "")


def classifier_pythons(repo: Path) -> tuple[str, list[tuple[int, int]]]:
    """The Pythons the classifiers name (pyproject.toml, setup.cfg, else setup.py's literals)."""
    listed = _pyproject(repo).get("classifiers") or []
    for where, lines in (("pyproject.toml", listed if isinstance(listed, list) else []),
                         ("setup.cfg", _config(_read(repo / "setup.cfg")).get("metadata", "classifiers",
                                                                              fallback="").splitlines()),
                         ("setup.py", re.findall(r"""["']([^"'\n]+)["']""", _read(repo / "setup.py")))):
        named = [(int(m[1]), int(m[2])) for c in lines if isinstance(c, str) and (m := CLASSIFIER.match(c.strip()))]
        if named:
            return f"classifiers in {where}", named
    return "", []


def python_version_file(repo: Path) -> tuple[str, list[tuple[int, int]]]:
    """.python-version's first X.Y (pyenv's file)."""
    for line in _read(repo / ".python-version").splitlines():
        if version := _version(line):
            return ".python-version", [version]
    return "", []


def tox_pythons(repo: Path) -> tuple[str, list[tuple[int, int]]]:
    """The Pythons of tox.ini's envlist: `py39`, `py310`, and braces as in `py3{9,10}`."""
    envlist = _config(_read(repo / "tox.ini")).get("tox", "envlist", fallback="")
    names = re.findall(r"py(\d)(\d+)", envlist)
    for prefix, items in re.findall(r"py(\d*)\{([\d,\s]+)\}", envlist):
        names += [(n[0], n[1:]) for i in items.split(",") if len(n := prefix + i.strip()) > 1]
    return ("tox.ini envlist", [(int(a), int(b)) for a, b in names]) if names else ("", [])


def closest_release(wanted: tuple[int, int]) -> str:
    """The release with the oldest Python not older than `wanted`; the newest when all are older."""
    for release, version in sorted(RELEASES.items(), key=lambda kv: kv[1]):
        if version >= wanted:
            return release
    return max(RELEASES, key=RELEASES.get)


def _version(text: str) -> tuple[int, int] | None:
    m = re.match(r"^\s*(\d+)\.(\d+)", text)
    return (int(m[1]), int(m[2])) if m else None


def _allows(spec: str, version: tuple[int, int]) -> bool:
    """Whether a requires-python specifier admits Python `version` (any patch release of it)."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        specs = SpecifierSet(spec)
    except InvalidSpecifier:
        return False
    # a patch release in the middle: `>=3.9.2` still admits 3.9, `<3.9` does not
    return specs.contains(f"{version[0]}.{version[1]}.50", prereleases=True)
