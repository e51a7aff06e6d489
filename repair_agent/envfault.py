"""Environment faults: what keeps the tests from running that no change to the code can mend.

A test module or conftest that imports a module the repository does not define and the sandbox
does not have, a fixture no installed plugin provides, a file that does not parse, a command line
pytest rejects: `env_fault()` names them, so that reproduce ends the run (exit 2) before any model
is asked. An import of a module or name that the repository itself defines stays a code fault:
the fix may have to add it.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from .sandbox.test_deps import PLUGIN_FIXTURES, SKIP_DIRS, option_plugin
from .state import TestRun

ERROR_LINE = re.compile(r"^(?:E\s+)?(\w+Error: .*)$", re.M)  # the exception pytest reports, last
MISSING_MODULE = re.compile(r"ModuleNotFoundError: No module named '([\w.]+)'")
MISSING_NAME = re.compile(r"ImportError: cannot import name '(\w+)' from (?:partially initialized module )?'([\w.]+)'")
MISSING_LIB = re.compile(r"ImportError: (\S+\.so\S*): cannot open shared object file")
SYNTAX = re.compile(r"(?:Syntax|Indentation|Tab)Error: ")
FILE_LINE = re.compile(r'File "([^"]+)", line (\d+)')
CONFTEST = re.compile(r"while loading conftest '([^']+)'")
FIXTURE = re.compile(r"fixture '(\w+)' not found")
USAGE = re.compile(r"^(?:.*: error: (.+)|ERROR: (?!usage:)(.+))$", re.M)
UNRECOGNIZED = re.compile(r"unrecognized arguments: (.+)")
# pip names that differ from the import name, and the plugins that provide a fixture
PACKAGES = {"yaml": "PyYAML", "PIL": "Pillow", "sklearn": "scikit-learn", "cv2": "opencv-python",
            "bs4": "beautifulsoup4", "dateutil": "python-dateutil", **PLUGIN_FIXTURES}


def env_fault(run: TestRun, tree: Path) -> str:
    """One line naming what the environment lacks and what to do, or "" for a code fault."""
    missing: dict[str, tuple[str, str]] = {}  # module or fixture -> (where, pip name to install)
    other: list[str] = []
    own = repo_names(tree)
    for c in run["cases"]:
        where = c["id"]
        text = c["details"] or c["message"]
        if c["outcome"] == "error" and c["message"].startswith("failed on setup") and (m := FIXTURE.search(text)):
            missing.setdefault(f"the fixture `{m[1]}`", (where, PACKAGES.get(m[1], "")))
        elif c["outcome"] == "error" and c["message"] == "collection failure":
            _import_fault(text, where.split("::")[0], tree, own, missing, other)
    if not run["cases"] and run["returncode"] in (3, 4):  # a conftest that fails, or a usage error
        text = run["output_tail"]
        if m := CONFTEST.search(text):
            where = m[1].removeprefix("/workspace/").removeprefix(f"{tree}/")
            _import_fault(text, where, tree, own, missing, other)
        elif m := USAGE.search(text):
            said = m[1] or m[2]
            options = (u[1].split() if (u := UNRECOGNIZED.search(said)) else [])
            plugins = list(dict.fromkeys(p for o in options if (p := option_plugin(o))))
            how = f"--deps {','.join(plugins)}" if plugins else "--deps PKG"
            other.append(f"pytest rejects its command line ({said}): fix --test or the pytest "
                         f"configuration, or install the plugin that provides the option ({how})")
    if missing:
        pkgs = list(dict.fromkeys(p or "PKG" for _, p in missing.values()))
        named = [f"{what} ({where})" for what, (where, _) in missing.items()]
        what = ", ".join(named[:3]) + (f" and {len(named) - 3} more" if len(named) > 3 else "")
        other.insert(0, f"the sandbox lacks {what}: add {' '.join(pkgs)} to the repository's dependency "
                        f"files, pass --deps {','.join(pkgs)}, or use an image that has it (--image)")
    if not other:
        return ""
    return "the tests cannot run in this environment (not a bug in the code): " + "; ".join(other)


def _import_fault(text: str, where: str, tree: Path, own: set[str], missing: dict, other: list) -> None:
    """Add what the failed import or parse that `text` ends with says the environment lacks
    (nothing for a module or name that the repository defines: that is the code's fault)."""
    errors = ERROR_LINE.findall(text)
    last = errors[-1] if errors else ""
    module = name = ""
    if m := MISSING_MODULE.match(last):
        module = m[1]
    elif m := MISSING_NAME.match(last):
        name, module = m[1], m[2]
    if module:
        top = module.split(".")[0]
        lacks = f"`{name}` in `{module}`" if name else f"`{module}`"
        if top in own:
            pass  # the repository's own module or name: the fix may have to add it
        elif top in sys.stdlib_module_names:
            other.append(f"the sandbox's Python has no {lacks} ({where}): use an image with the Python "
                         "version the repository needs (--image)")
        elif name:
            other.append(f"the installed `{top}` has no {lacks} ({where}): install the version the repository "
                         f"needs (its dependency files, or --deps '{PACKAGES.get(top, top)}==VERSION')")
        else:
            missing.setdefault(f"the module {lacks}", (where, PACKAGES.get(top, top)))
    elif m := MISSING_LIB.match(last):
        other.append(f"the system library {m[1]} is missing ({where}): use an image that has it (--image)")
    elif SYNTAX.match(last) and (at := FILE_LINE.findall(text)):
        file, line = at[-1]
        file = file.removeprefix("/workspace/").removeprefix(f"{tree}/")
        other.append(f"{file} line {line} does not parse ({last.strip()}): fix it, or use an image whose "
                     "Python accepts it (--image)")


def repo_names(tree: Path) -> set[str]:
    """The module and folder names the tree defines anywhere: an import of one is the code's."""
    names: set[str] = set()
    for _dir, dirs, files in os.walk(tree):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith(".")]
        names.update(dirs)
        names.update(f[:-3] for f in files if f.endswith(".py"))
    return names
