"""Which Debian release's Python a project should run on.

The base images are debootstrapped Debian releases (build-base.sh), each with its own python3. The
mirror here serves these three; buster (3.7) is gone from it. BugsInPy's bugs were recorded on
Python 3.6-3.8, and old projects pin dependencies that no longer install on a new Python: the
closest Python that is not older than the one asked for is the best guess (new syntax fails on an
older Python; an old project usually still runs one or two versions up).
"""

from __future__ import annotations

import re

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
