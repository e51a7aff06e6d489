"""What a repository needs to run its tests, found in its own files (never by running them: setup.py
is read with `ast`), for the dependency image (images.env_image) of fix, explain, ci and bench.

Test dependencies, in this order, all that apply: pyproject.toml's `[project.optional-dependencies]`
and `[dependency-groups]` groups named like test or dev (and Poetry's dev groups), setup.py's and
setup.cfg's `extras_require` groups of those names and `tests_require`, the requirement files for
tests and development (`requirements-test.txt`, `dev-requirements.txt`, `requirements/test.txt`, ...,
with the files they include), tox.ini's `[testenv] deps`, Pipfile's `[dev-packages]`. Each one keeps
the file that gave it. The first source of a package wins; the sandbox's own test runner (pytest,
pluggy, coverage) is never replaced, and pytest plugins are taken unpinned, as the sandbox's pytest
is newer than an old pin of theirs.

Plugins: the options of the pytest configuration's `addopts` (the file pytest itself would read:
pytest.ini, pyproject.toml, tox.ini, setup.cfg), its ini keys and `required_plugins`, and the markers
and fixtures the test files use, each mapped to the package that provides it (PLUGIN_OPTIONS,
PLUGIN_INI_KEYS, PLUGIN_MARKERS, PLUGIN_FIXTURES). `command_line()` says what the sandbox's pytest
must be told: the options of a plugin that could not be installed dropped from addopts (with a
warning), and coverage and xdist, where installed for the configuration, kept off: the sandbox
measures its own coverage and runs one test process.

Removed pytest APIs: calls in the test files to what newer pytest removed (COMPAT_CALLS, e.g.
`request.node.get_marker`) load the sandbox's pytest_compat plugin, which gives them back.
"""

from __future__ import annotations

import ast
import configparser
import hashlib
import json
import os
import re
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .install_deps import COMPAT_MODULE, canonical, decode, file_pins, requirement_name

RUNNER = {"pytest", "pluggy", "coverage"}  # the sandbox's own: a repository's pin of them is left out
NEVER_INSTALLABLE = {"pkg-resources"}  # `pip freeze` on Debian/Ubuntu lists it; it never existed on PyPI
# Windows' own bindings: a freeze made on Windows lists them without their `sys_platform` marker, and
# they have no distribution for Linux, where the sandbox runs (sanic's, luigi's, scrapy's freezes)
WINDOWS_ONLY = {"pywin32", "pypiwin32", "pywinpty"}
SANDBOX_PLUGINS = {"pytest-timeout"}  # in the tools image (images.TOOLS)
GROUP = re.compile(r"(^|[-_])(tests?|testing|dev|develop|development)($|[-_])", re.I)
SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".tox", "build", "dist"}
SCAN_LIMIT = 4000  # test files read for markers and fixtures, at most (a big project has thousands)

# addopts option -> (the plugin that provides it, whether it takes a value: "yes", "no", "maybe")
PLUGIN_OPTIONS = {
    **{o: ("pytest-cov", v) for o, v in [("--cov", "maybe"), ("--cov-report", "yes"), ("--cov-config", "yes"),
                                         ("--cov-branch", "no"), ("--cov-fail-under", "yes"), ("--cov-append", "no"),
                                         ("--cov-context", "yes"), ("--no-cov", "no"), ("--no-cov-on-fail", "no")]},
    **{o: ("pytest-xdist", v) for o, v in [("-n", "yes"), ("--numprocesses", "yes"), ("--dist", "yes"),
                                           ("--maxprocesses", "yes"), ("--tx", "yes"), ("--looponfail", "no")]},
    **{o: ("pytest-timeout", "yes") for o in ("--timeout", "--timeout-method", "--timeout_method")},
    "--asyncio-mode": ("pytest-asyncio", "yes"),
    **{o: ("pytest-rerunfailures", "yes") for o in ("--reruns", "--reruns-delay", "--only-rerun")},
    **{o: ("pytest-randomly", v) for o, v in [("--randomly-seed", "yes"), ("--randomly-dont-reorganize", "no"),
                                              ("--randomly-dont-reset-seed", "no")]},
    **{o: ("pytest-random-order", v) for o, v in [("--random-order", "no"), ("--random-order-bucket", "yes"),
                                                  ("--random-order-seed", "yes")]},
    **{o: ("pytest-django", v) for o, v in [("--ds", "yes"), ("--reuse-db", "no"), ("--create-db", "no"),
                                            ("--nomigrations", "no"), ("--no-migrations", "no")]},
    **{o: ("pytest-html", v) for o, v in [("--html", "yes"), ("--self-contained-html", "no")]},
    **{o: ("pytest-doctestplus", "no") for o in ("--doctest-plus", "--doctest-rst", "--doctest-ufunc")},
    **{o: ("pytest-mpl", v) for o, v in [("--mpl", "no"), ("--mpl-baseline-path", "yes")]},
    **{o: ("hypothesis", v) for o, v in [("--hypothesis-profile", "yes"), ("--hypothesis-seed", "yes"),
                                         ("--hypothesis-show-statistics", "no")]},
    "--benchmark-skip": ("pytest-benchmark", "no"), "--benchmark-disable": ("pytest-benchmark", "no"),
    "--flake8": ("pytest-flake8", "no"), "--pep8": ("pytest-pep8", "no"), "--mypy": ("pytest-mypy", "no"),
    "--black": ("pytest-black", "no"), "--isort": ("pytest-isort", "no"), "--pylint": ("pytest-pylint", "no"),
    "--pycodestyle": ("pytest-pycodestyle", "no"), "--instafail": ("pytest-instafail", "no"),
    "--json-report": ("pytest-json-report", "no"), "--remote-data": ("pytest-remotedata", "maybe"),
    "--forked": ("pytest-forked", "no"),
}
# options of pytest's cache (last-failed, stepwise): the sandbox runs with `-p no:cacheprovider`
CACHE_OPTIONS = {"--lf", "--last-failed", "--ff", "--failed-first", "--nf", "--new-first", "--cache-show",
                 "--cache-clear", "--lfnf", "--last-failed-no-failures", "--sw", "--stepwise", "--sw-skip",
                 "--stepwise-skip", "--sw-reset", "--stepwise-reset"}
PLUGIN_MODULES = {"pytest_cov": "pytest-cov", "xdist": "pytest-xdist", "pytest_asyncio": "pytest-asyncio",
                  "pytest_mock": "pytest-mock", "pytest_django": "pytest-django", "randomly": "pytest-randomly",
                  "rerunfailures": "pytest-rerunfailures", "pytest_benchmark": "pytest-benchmark",
                  "pytest_httpserver": "pytest-httpserver", "pytest_asyncio.plugin": "pytest-asyncio"}
PLUGIN_INI_KEYS = {"asyncio_mode": "pytest-asyncio", "DJANGO_SETTINGS_MODULE": "pytest-django",
                   "django_find_project": "pytest-django", "env": "pytest-env", "env_files": "pytest-dotenv",
                   "mock_use_standalone_module": "pytest-mock", "qt_api": "pytest-qt", "trio_mode": "pytest-trio",
                   "flake8-ignore": "pytest-flake8", "flake8-max-line-length": "pytest-flake8",
                   "doctest_plus": "pytest-doctestplus"}
PLUGIN_MARKERS = {"asyncio": "pytest-asyncio", "trio": "pytest-trio", "django_db": "pytest-django",
                  "order": "pytest-order", "dependency": "pytest-dependency", "vcr": "pytest-recording",
                  "mpl_image_compare": "pytest-mpl", "remote_data": "pytest-remotedata"}
PLUGIN_FIXTURES = {"mocker": "pytest-mock", "benchmark": "pytest-benchmark", "httpx_mock": "pytest-httpx",
                   "requests_mock": "requests-mock", "aiohttp_client": "pytest-aiohttp", "qtbot": "pytest-qt",
                   "httpserver": "pytest-httpserver", "datadir": "pytest-datadir", "faker": "Faker",
                   "freezer": "pytest-freezer"}
# installed for the configuration, but kept from changing how the sandbox runs the tests
KEEP_OFF = {"pytest-cov": ["--no-cov"], "pytest-xdist": ["-n", "0"]}
# calls of pytest APIs that the sandbox's pytest no longer has, which pytest_compat.py gives back
COMPAT_CALLS = {"Node.get_marker (removed in pytest 4.1)": re.compile(r"\.get_marker\("),
                "FixtureRequest.getfuncargvalue (removed in pytest 4.0)": re.compile(r"\.getfuncargvalue\("),
                "a TestCase whose __init__ needs a real test method (pytest 8 collects with 'runTest')":
                    re.compile(r"getattr\(self,\s*methodName\)"),
                "pytest.fixture(...) on a function that is a fixture already (refused since pytest 8)":
                    re.compile(r"pytest\.fixture\([^()]*\)\(\s*\w+\s*\)"),
                "nose's with_setup (pytest 8 dropped its nose support)": re.compile(r"@with_setup\("),
                "sys.setcheckinterval (removed in Python 3.9)": re.compile(r"\bsetcheckinterval\b")}
CALLED_FIXTURE = "a fixture called directly (an error since pytest 4.0)"  # found by name: _used_in_tests
FIXTURE_NAME = re.compile(r"@(?:pytest\.)?fixture\b[^\n]*\n(?:[ \t]*@[^\n]*\n)*[ \t]*def (\w+)\(")


@dataclass
class TestNeeds:
    """What discover() found: requirements (each {"requirement", "source"}), plugins (each {"plugin",
    "source", "options"}), the strict requirement files, the pytest configuration's addopts and where."""

    requirement_files: list[str] = field(default_factory=list)
    packages: list[dict] = field(default_factory=list)
    plugins: list[dict] = field(default_factory=list)
    config: str = ""  # "setup.cfg [tool:pytest]"
    addopts: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was read and left out, and why
    compat: list[dict] = field(default_factory=list)  # removed pytest APIs the tests call: {"api", "source"}
    digest: str = ""  # of the bytes of the requirement files pip reads itself
    package_roots: list[str] = field(default_factory=list)  # folders the project's packages live in (`lib`)

    def found(self) -> bool:
        """Anything beyond what the image installed before discovery (requirements.txt, the project)."""
        return bool(self.packages or self.plugins or self.compat or self.package_roots or self.dropped_without_plugin())

    def key(self) -> bytes:
        """What keys the dependency image: everything that the build installs or changes."""
        return json.dumps({"packages": self.packages, "plugins": self.plugins, "addopts": self.addopts,
                           "files": self.digest, **({"compat": self.compat} if self.compat else {}),
                           **({"roots": self.package_roots} if self.package_roots else {})},
                          sort_keys=True).encode()

    def to_dict(self) -> dict:
        return asdict(self)

    def dropped_without_plugin(self) -> list[str]:
        """addopts options that no package can give the sandbox (pytest's cache is off there)."""
        return [o for o in self.addopts if o.split("=", 1)[0] in CACHE_OPTIONS]


def discover(repo: Path) -> TestNeeds:
    """Everything the tree `repo` says its tests need (see the module's docstring)."""
    repo = Path(repo)
    needs = TestNeeds(requirement_files=["requirements.txt"] if (repo / "requirements.txt").is_file() else [])
    own = project_name(repo)
    found: list[tuple[str, str]] = []
    for reader in (_pyproject, _setup_py, _setup_cfg, _requirement_files, _tox, _pipfile):
        try:
            found += reader(repo, needs)
        except (OSError, ValueError, SyntaxError, RecursionError, AttributeError, TypeError) as exc:
            # a file we cannot read (a Python 2 setup.py, a table of another shape): said, not fatal
            needs.notes.append(f"{reader.__name__.strip('_')}: not read ({type(exc).__name__}: {exc})"[:200])
    seen = set()
    for requirement, source in found:
        req = runner_safe(requirement)
        name = canonical(requirement_name(requirement))
        if req is None or name == own:
            if name in RUNNER:
                needs.notes.append(f"{requirement} ({source}): the sandbox brings its own test runner")
            elif name in WINDOWS_ONLY:
                needs.notes.append(f"{requirement} ({source}): Windows only, left out on the sandbox's Linux")
            continue
        if name not in seen:
            seen.add(name)
            needs.packages.append({"requirement": req, "source": source})
    try:
        needs.package_roots = package_roots(repo)
    except (OSError, ValueError, SyntaxError, RecursionError, AttributeError, TypeError) as exc:
        needs.notes.append(f"package_dir: not read ({type(exc).__name__}: {exc})"[:200])
    needs.config, needs.addopts, ini = pytest_config(repo)
    _plugins(repo, needs, ini, seen)
    needs.digest = _digest(repo, needs.requirement_files)
    return needs


def package_roots(repo: Path) -> list[str]:
    """The folders other than the root and `src/` (which the sandbox's path has) that the project's
    packages live in, as its `package_dir` says (setup.py, setup.cfg, pyproject.toml's
    [tool.setuptools]): ansible's `{'': 'lib', 'ansible_test': 'test/lib/ansible_test'}` -> lib,
    test/lib. Its tests must import them from the tree, not from the copy installed in the image."""
    mapping = _toml(repo / "pyproject.toml").get("tool", {}).get("setuptools", {}).get("package-dir") or {}
    cfg = _ini(repo / "setup.cfg").get("options", "package_dir", fallback="")
    for line in cfg.replace(";", "\n").splitlines():
        if "=" in line:
            name, folder = (x.strip() for x in line.split("=", 1))
            mapping.setdefault(name, folder)
    if (repo / "setup.py").is_file():
        call, names = _setup_call(repo / "setup.py")
        kw = {k.arg: k.value for k in call.keywords if k.arg} if call else {}
        found = _literal(kw.get("package_dir"), names)
        if found is None:  # setup(**params): a `package_dir=` (or key) of the dict that the call spreads
            tree = ast.parse(decode((repo / "setup.py").read_bytes()))
            values = [n.value for n in ast.walk(tree) if isinstance(n, ast.keyword) and n.arg == "package_dir"]
            values += [v for n in ast.walk(tree) if isinstance(n, ast.Dict) for k, v in zip(n.keys, n.values)
                       if isinstance(k, ast.Constant) and k.value == "package_dir"]
            found = next((x for v in values if isinstance(x := _literal(v, names), dict)), None)
        mapping = {**(found if isinstance(found, dict) else {}), **mapping}
    roots = []
    for name, folder in mapping.items():
        if not isinstance(folder, str):
            continue
        root = Path(folder.strip("/")) if name == "" else Path(folder.strip("/")).parent  # a named one: its parent
        rel = root.as_posix()
        if rel not in (".", "", "src") and (repo / rel).is_dir() and rel not in roots:
            roots.append(rel)
    return roots


def runner_safe(requirement: str) -> str | None:
    """`requirement` as the sandbox installs it: None for the test runner itself and for names that
    never installed; a pytest plugin without its pin (and marker)."""
    name = canonical(requirement_name(requirement))
    if not name or name in RUNNER or name in NEVER_INSTALLABLE:
        return None
    if name in WINDOWS_ONLY and not re.search(r"sys_platform|platform_system|os_name", requirement):
        return None  # with a marker, pip itself leaves it out here
    return requirement_name(requirement) if name.startswith("pytest-") else requirement.strip()


def project_name(repo: Path) -> str:
    """The project's own name (canonical), "" when none is found: a test extra naming it is left out."""
    try:
        return _project_name(repo)
    except (OSError, ValueError, SyntaxError, RecursionError, AttributeError, TypeError):
        return ""


def _project_name(repo: Path) -> str:
    name = _toml(repo / "pyproject.toml").get("project", {}).get("name") or \
        _ini(repo / "setup.cfg").get("metadata", "name", fallback="")
    if not name and (repo / "setup.py").is_file():
        call, _ = _setup_call(repo / "setup.py")
        kw = {k.arg: k.value for k in call.keywords} if call else {}
        value = kw.get("name")
        name = value.value if isinstance(value, ast.Constant) and isinstance(value.value, str) else ""
        if not name and call is not None and any(k.arg is None for k in call.keywords):
            name = _spread_name(repo / "setup.py")
    return canonical(name) if isinstance(name, str) else ""


def _spread_name(setup: Path) -> str:
    """The `name` of the dict that `setup(**params)` spreads (ansible's `dict(name='ansible-base',
    package_dir=..., packages=...)`): a dict that also names packages, else ""."""
    for node in ast.walk(ast.parse(decode(setup.read_bytes()))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
            items = {k.arg: k.value for k in node.keywords if k.arg}
        elif isinstance(node, ast.Dict):
            items = {k.value: v for k, v in zip(node.keys, node.values) if isinstance(k, ast.Constant)}
        else:
            continue
        value = items.get("name")
        if isinstance(value, ast.Constant) and isinstance(value.value, str) and \
                items.keys() & {"packages", "package_dir", "py_modules"}:
            return value.value
    return ""


# -- the readers: each returns [(requirement, source)] ---------------------------------------------
def _pyproject(repo: Path, needs: TestNeeds) -> list[tuple[str, str]]:
    data = _toml(repo / "pyproject.toml")
    out = []
    for table, where in ((data.get("project", {}).get("optional-dependencies"), "[project.optional-dependencies]"),
                         (data.get("dependency-groups"), "[dependency-groups]")):
        for group, reqs in (table or {}).items():
            if GROUP.search(group) and isinstance(reqs, list):
                out += [(r, f"pyproject.toml {where} {group}") for r in reqs if isinstance(r, str)]
    poetry = data.get("tool", {}).get("poetry", {})
    groups = {"dev": poetry.get("dev-dependencies")} | {
        g: t.get("dependencies") for g, t in (poetry.get("group") or {}).items() if isinstance(t, dict)}
    for group, deps in groups.items():
        if deps and GROUP.search(group):  # Poetry's version syntax is not pip's: the name alone
            where = "[tool.poetry.dev-dependencies]" if group == "dev" and poetry.get("dev-dependencies") \
                else f"[tool.poetry.group.{group}.dependencies]"
            out += [(name, f"pyproject.toml {where}") for name in deps if name != "python"]
    return out


def _setup_py(repo: Path, needs: TestNeeds) -> list[tuple[str, str]]:
    if not (repo / "setup.py").is_file():
        return []
    call, names = _setup_call(repo / "setup.py")
    if call is None:
        return []
    kw = {k.arg: k.value for k in call.keywords if k.arg}
    out = []
    tests = _literal(kw.get("tests_require"), names)
    if tests is None and "tests_require" in kw:
        needs.notes.append("setup.py tests_require: not a literal, not read")
    out += [(r, "setup.py tests_require") for r in _strings(tests)]
    extras = _literal(kw.get("extras_require"), names)
    if extras is None and "extras_require" in kw:
        needs.notes.append("setup.py extras_require: not a literal, not read")
    for group, reqs in (extras or {}).items() if isinstance(extras, dict) else ():
        if isinstance(group, str) and GROUP.search(group.split(":")[0]):
            out += [(r, f"setup.py extras_require[{group!r}]") for r in _strings(reqs)]
    return out


def _setup_cfg(repo: Path, needs: TestNeeds) -> list[tuple[str, str]]:
    cfg = _ini(repo / "setup.cfg")
    out = [(r, "setup.cfg [options] tests_require")
           for r in _cfg_list(cfg.get("options", "tests_require", fallback=""))]
    if cfg.has_section("options.extras_require"):
        for group, value in cfg.items("options.extras_require"):
            if GROUP.search(group):
                out += [(r, f"setup.cfg [options.extras_require] {group}") for r in _cfg_list(value)]
    return out


REQUIREMENT_FILE = re.compile(r"^(?:requirements[-_.](?P<a>\w[\w.-]*)|(?P<b>\w[\w.-]*?)[-_]requirements)\.txt$", re.I)
TESTISH = re.compile(r"test|dev|ci\b|^ci", re.I)


def _requirement_files(repo: Path, needs: TestNeeds) -> list[tuple[str, str]]:
    files = []
    for f in sorted(repo.iterdir()):
        m = REQUIREMENT_FILE.match(f.name)
        if f.is_file() and m and TESTISH.search(m["a"] or m["b"]):
            files.append(f)
    for folder in ("requirements", "reqs"):
        if (repo / folder).is_dir():
            files += [f for f in sorted((repo / folder).glob("*.txt")) if TESTISH.search(f.stem)]
    return [pair for f in files for pair in _file_requirements(repo, f, needs)]


def _file_requirements(repo: Path, path: Path, needs: TestNeeds) -> list[tuple[str, str]]:
    """The requirements of a requirement file and what it includes (-r), each with the file that
    lists it; the project itself (`.`, `-e .`) and pip options are left out."""
    out = []
    for file, line in file_pins(str(path)):
        rel = os.path.relpath(file, repo)
        if rel == "requirements.txt" and "requirements.txt" in needs.requirement_files:
            continue  # installed as it is, with pip's own reading
        if line.startswith((".", "/", "file:")):
            needs.notes.append(f"{rel}: `{line}` (a local path) left out")
            continue
        out.append((line, rel))
    return out


def _tox(repo: Path, needs: TestNeeds) -> list[tuple[str, str]]:
    deps = _ini(repo / "tox.ini").get("testenv", "deps", fallback="")
    out = []
    for line in deps.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if m := re.match(r"^-r\s*(\S+)$", line):
            path = repo / m[1].replace("{toxinidir}", ".").lstrip("/")
            if path.resolve().is_relative_to(repo.resolve()) and path.is_file():
                out += _file_requirements(repo, path, needs)
            continue
        if "{" in line or re.match(r"^[\w,!-]+:\s", line) or line.startswith("-"):
            needs.notes.append(f"tox.ini [testenv] deps: `{line}` (a substitution, factor or option) left out")
            continue
        out.append((line, "tox.ini [testenv] deps"))
    return out


def _pipfile(repo: Path, needs: TestNeeds) -> list[tuple[str, str]]:
    out = []
    for name, spec in (_toml(repo / "Pipfile").get("dev-packages") or {}).items():
        version = spec if isinstance(spec, str) else spec.get("version", "*") if isinstance(spec, dict) else "*"
        out.append((name if version in ("*", "") else f"{name}{version}", "Pipfile [dev-packages]"))
    return out


# -- the pytest configuration and the plugins it needs --------------------------------------------
def pytest_config(repo: Path) -> tuple[str, list[str], dict]:
    """`(where, addopts, ini keys)` of the configuration file pytest reads in `repo` (its own order)."""
    for name, section in (("pytest.ini", "pytest"), (".pytest.ini", "pytest"), ("pyproject.toml", None),
                          ("tox.ini", "pytest"), ("setup.cfg", "tool:pytest")):
        path = repo / name
        if not path.is_file():
            continue
        if section is None:
            ini = _toml(path).get("tool", {}).get("pytest", {}).get("ini_options")
            if ini is None:
                continue
            where = "pyproject.toml [tool.pytest.ini_options]"
        else:
            cfg = _ini(path)
            if not cfg.has_section(section):
                if name.endswith("pytest.ini"):
                    return f"{name}", [], {}  # pytest takes it even without the section
                continue
            ini, where = dict(cfg.items(section)), f"{name} [{section}]"
        opts = ini.get("addopts", "")
        try:
            addopts = shlex.split(opts) if isinstance(opts, str) else [str(o) for o in opts]
        except ValueError:
            addopts = opts.split()
        return where, addopts, ini
    return "", [], {}


def option_plugin(option: str) -> str | None:
    """The package that provides a pytest command-line option (`--cov=src` -> pytest-cov), else None."""
    name = option.split("=", 1)[0]
    if re.fullmatch(r"-n\S+", name):  # -n4, -nauto
        name = "-n"
    if name in PLUGIN_OPTIONS:
        return PLUGIN_OPTIONS[name][0]
    if name.startswith("--benchmark-"):
        return "pytest-benchmark"
    return None


def _plugins(repo: Path, needs: TestNeeds, ini: dict, have: set[str]) -> None:
    wanted: dict[str, dict] = {}

    def want(plugin: str, source: str, option: str = "") -> None:
        if canonical(plugin) in have or canonical(plugin) in SANDBOX_PLUGINS:
            return
        entry = wanted.setdefault(plugin, {"plugin": plugin, "source": source, "options": []})
        if option:
            entry["options"].append(option)

    tokens = needs.addopts
    for i, token in enumerate(tokens):
        if token.startswith("-p") and token not in ("-p",):
            module = token[2:].lstrip("=")
        elif token == "-p" and i + 1 < len(tokens):
            module = tokens[i + 1]
        else:
            module = ""
        if module and not module.startswith("no:") and module in PLUGIN_MODULES:
            want(PLUGIN_MODULES[module], f"{needs.config} addopts", token)
        elif token.startswith("-") and (plugin := option_plugin(token)):
            want(plugin, f"{needs.config} addopts", token.split("=", 1)[0])
    for key, plugin in PLUGIN_INI_KEYS.items():
        if key in ini:
            want(plugin, f"{needs.config} {key}")
    for req in str(ini.get("required_plugins", "")).split():
        want(requirement_name(req), f"{needs.config} required_plugins")
    markers, fixtures, calls = _used_in_tests(repo)
    needs.compat = [{"api": api, "source": where} for api, where in calls.items()]
    for marker in sorted(markers & PLUGIN_MARKERS.keys()):
        want(PLUGIN_MARKERS[marker], f"the marker @pytest.mark.{marker} in {markers[marker]}")
    for fixture in sorted(fixtures & PLUGIN_FIXTURES.keys()):
        want(PLUGIN_FIXTURES[fixture], f"the fixture `{fixture}` in {fixtures[fixture]}")
    needs.plugins = list(wanted.values())


MARK = re.compile(r"pytest\.mark\.(\w+)")
FIXTURE_DEF = re.compile(r"@pytest\.fixture[^\n]*\n(?:[ \t]*@[^\n]*\n)*[ \t]*(?:async\s+)?def\s+\w+\s*\(([^)]*)\)")
TEST_DEF = re.compile(r"^[ \t]*(?:async\s+)?def\s+test\w*\s*\(([^)]*)\)", re.M)
USEFIXTURES = re.compile(r"usefixtures\(([^)]*)\)")
DEF = re.compile(r"^[ \t]*(?:async\s+)?def\s+(\w+)", re.M)


def _used_in_tests(repo: Path) -> tuple[dict, dict, dict]:
    """{marker: first file}, {fixture: first file} of the test modules and conftests, less the
    fixtures the repository defines itself, and {removed API (COMPAT_CALLS, CALLED_FIXTURE): first file}."""
    markers: dict[str, str] = {}
    fixtures: dict[str, str] = {}
    calls: dict[str, str] = {}
    own: set[str] = set()
    texts: dict[str, str] = {}
    for path in test_files(repo):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        rel = path.relative_to(repo).as_posix()
        texts[rel] = text
        for m in MARK.findall(text):
            markers.setdefault(m, rel)
        params = [p for args in FIXTURE_DEF.findall(text) + TEST_DEF.findall(text) for p in args.split(",")]
        params += re.findall(r"['\"](\w+)['\"]", " ".join(USEFIXTURES.findall(text)))
        for p in params:
            name = re.split(r"[:=\s]", p.strip().lstrip("*"), maxsplit=1)[0]
            if name.isidentifier():
                fixtures.setdefault(name, rel)
        own.update(DEF.findall(text))
        for api, call in COMPAT_CALLS.items():
            if api not in calls and call.search(text):
                calls[api] = rel
    defined = {name for text in texts.values() for name in FIXTURE_NAME.findall(text)}
    if defined:  # thefuck's tests of 2017: `@pytest.mark.parametrize('command', [did_not_match('foo')])`
        called = re.compile(r"(?<![\w.])(?<!def )(?:" + "|".join(map(re.escape, sorted(defined))) + r")\(")
        if first := next((rel for rel, text in texts.items() if called.search(text)), None):
            calls[CALLED_FIXTURE] = first
    return markers, {k: v for k, v in fixtures.items() if k not in own}, calls


def test_files(repo: Path):
    """The test modules and conftests of the tree (at most SCAN_LIMIT of them)."""
    count = 0
    for folder, dirs, files in os.walk(repo):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
        for f in sorted(files):
            if f.endswith(".py") and (f.startswith("test") or f.endswith("_test.py") or f == "conftest.py"):
                count += 1
                if count > SCAN_LIMIT:
                    return
                yield Path(folder) / f


def command_line(needs: TestNeeds, installed: set[str]) -> tuple[list[str], list[str]]:
    """`(PYTEST_ADDOPTS tokens, warnings)` for the dependency image, given the plugins `installed`
    (canonical names): addopts without the options no installed plugin provides, the off switches
    of the plugins that would change how the sandbox runs the tests, and the compat plugin where the
    tests call a removed pytest API (said in a note)."""
    have = {canonical(p) for p in installed} | SANDBOX_PLUGINS
    kept, dropped, skip = [], [], False
    for i, token in enumerate(needs.addopts):
        if skip:
            skip = False
            continue
        name = token.split("=", 1)[0]
        plugin = option_plugin(token)
        module = token[2:].lstrip("=") if token.startswith("-p") and token != "-p" else ""
        if token == "-p" and i + 1 < len(needs.addopts) and needs.addopts[i + 1] in PLUGIN_MODULES:
            if canonical(PLUGIN_MODULES[needs.addopts[i + 1]]) not in have:
                dropped += [token, needs.addopts[i + 1]]
                skip = True
                continue
        elif module in PLUGIN_MODULES and canonical(PLUGIN_MODULES[module]) not in have:
            dropped.append(token)
            continue
        cache = name in CACHE_OPTIONS
        if cache or (plugin and canonical(plugin) not in have):
            dropped.append(token)
            takes = PLUGIN_OPTIONS.get("-n" if re.fullmatch(r"-n\S*", name) else name, ("", "no"))[1]
            following = needs.addopts[i + 1] if i + 1 < len(needs.addopts) else ""
            if "=" not in token and not re.fullmatch(r"-n\S+", name) and following and (
                    takes == "yes" or (takes == "maybe" and not following.startswith("-"))):
                dropped.append(following)
                skip = True
            continue
        kept.append(token)
    out, warnings = [], []
    if dropped:
        out += ["-o", "addopts=" + shlex.join(kept)]
        why = "pytest's cache is off in the sandbox" if all(t.split("=")[0] in CACHE_OPTIONS or not t.startswith("-")
                                                           for t in dropped) else "its plugin could not be installed"
        warnings.append(f"warning: {' '.join(dropped)} dropped from {needs.config} addopts ({why})")
    for plugin, off in KEEP_OFF.items():
        used = any(option_plugin(t) == plugin for t in kept)
        if used and plugin in have:
            out += off
    if needs.compat:
        out += ["-p", COMPAT_MODULE]
        warnings += [f"note: the tests call {c['api']} ({c['source']}): the sandbox's pytest gets it back "
                     f"({COMPAT_MODULE})" for c in needs.compat]
    return out, warnings


# -- reading files ---------------------------------------------------------------------------------
def _toml(path: Path) -> dict:
    from ..config import tomllib

    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(decode(path.read_bytes()))
    except (tomllib.TOMLDecodeError, OSError):
        return {}
    return data if isinstance(data, dict) else {}


def _ini(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # keys as written: DJANGO_SETTINGS_MODULE
    if path.is_file():
        try:
            parser.read_string(decode(path.read_bytes()))
        except (configparser.Error, OSError):
            return configparser.ConfigParser(interpolation=None)
    return parser


def _cfg_list(value: str) -> list[str]:
    """A setup.cfg list as setuptools reads it: one item a line, or `;`-separated on one line."""
    items = value.splitlines() if "\n" in value.strip() else value.split(";")
    return [i.split("#", 1)[0].strip() for i in items if i.split("#", 1)[0].strip()]


def _setup_call(path: Path) -> tuple[ast.Call | None, dict]:
    """The `setup(...)` call of a setup.py, and its module-level assignments (name -> value node)."""
    tree = ast.parse(decode(path.read_bytes()))
    names: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            names[node.targets[0].id] = node.value
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if (isinstance(func, ast.Name) and func.id == "setup") or (
                    isinstance(func, ast.Attribute) and func.attr == "setup"):
                return node, names
    return None, names


def _literal(node: ast.AST | None, names: dict, depth: int = 0):
    """The value of a literal, following module-level names and `+` of lists; None where it is not one."""
    if node is None or depth > 20:
        return None
    if isinstance(node, ast.Name):
        return _literal(names.get(node.id), names, depth + 1)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _literal(node.left, names, depth + 1), _literal(node.right, names, depth + 1)
        return left + right if isinstance(left, list) and isinstance(right, list) else None
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        items = [_literal(e, names, depth + 1) for e in node.elts]
        return None if any(i is None for i in items) else list(items)
    if isinstance(node, ast.Dict):
        out = {}
        for k, v in zip(node.keys, node.values):
            key, value = _literal(k, names, depth + 1), _literal(v, names, depth + 1)
            if isinstance(key, str) and value is not None:
                out[key] = value
        return out
    if isinstance(node, ast.Constant):
        return node.value
    return None


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [ln.strip() for ln in value.splitlines() if ln.strip()]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _digest(repo: Path, files: list[str]) -> str:
    """Of the bytes of the requirement files pip reads itself, and of the files they include."""
    reached = sorted({file for f in files for file, _ in file_pins(str(repo / f))} | {str(repo / f) for f in files})
    h = hashlib.sha256()
    for file in reached:
        h.update(os.path.relpath(file, repo).encode() + b"\0" + Path(file).read_bytes())
    return h.hexdigest()[:16] if files else ""
