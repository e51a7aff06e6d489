"""What a repository needs to run its tests, read from its files (test_deps.py), without Docker:
the sources of test dependencies and their order, setup.py read and never run, requirement files
in the encodings pip reads, the plugins a configuration needs and the command line the sandbox
gets when one is missing. The images these make are built in test_env_image.py."""

from __future__ import annotations

import codecs
import json

from repair_agent.sandbox.images import dependency_key
from repair_agent.sandbox.install_deps import decode, nearest
from repair_agent.sandbox.test_deps import command_line, discover, pytest_config, runner_safe

SETUP_PY = """\
import os
open(os.path.join(os.path.dirname(__file__), 'RAN'), 'w').write('setup.py was executed')
tests_require = ['pytest>=3', 'mock==2.0.0']
extras = {'test': tests_require + ['pytest-mock==1.6'], 'docs': ['sphinx'], 'dev:python_version<"3"': ['enum34']}
setup(name='calc-lib', tests_require=tests_require, extras_require=extras)
"""


def write(root, files: dict[str, str | bytes]):
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return root


def found(needs) -> list[tuple[str, str]]:
    return [(p["requirement"], p["source"]) for p in needs.packages]


def test_every_source_of_test_dependencies_in_order_each_with_its_file(tmp_path):
    repo = write(tmp_path, {
        "pyproject.toml": '[project]\nname = "calc"\n[project.optional-dependencies]\n'
                          'testing = ["hypothesis>=6", "calc[extra]"]\ndocs = ["sphinx"]\n',
        "setup.py": SETUP_PY,
        "setup.cfg": "[options]\ntests_require =\n    nose\n[options.extras_require]\ntest = freezegun; flaky\n",
        "requirements.txt": "six==1.15.0\n",
        "requirements-docs.txt": "furo\n",
        "dev-requirements.txt": "-r requirements/base.txt\nresponses==0.10  # pinned\n-e .\n--index-url x\n",
        "requirements/base.txt": "attrs\n",
        "requirements/test.txt": "toolz\n",
        "tox.ini": "[tox]\nenvlist = py39\n[testenv]\ndeps =\n    -r{toxinidir}/requirements/test.txt\n"
                   "    py27: unittest2\n    parameterized\ncommands = pytest\n",
        "Pipfile": '[packages]\nrequests = "*"\n[dev-packages]\nddt = "==1.4.1"\nmock = "*"\n',
    })
    needs = discover(repo)
    assert found(needs) == [
        ("hypothesis>=6", "pyproject.toml [project.optional-dependencies] testing"),
        ("mock==2.0.0", "setup.py tests_require"),
        ("pytest-mock", "setup.py extras_require['test']"),  # a plugin: unpinned, as the sandbox's pytest is new
        ("enum34", "setup.py extras_require['dev:python_version<\"3\"']"),
        ("nose", "setup.cfg [options] tests_require"),
        ("freezegun", "setup.cfg [options.extras_require] test"), ("flaky", "setup.cfg [options.extras_require] test"),
        ("attrs", "requirements/base.txt"), ("responses==0.10", "dev-requirements.txt"),
        ("toolz", "requirements/test.txt"), ("parameterized", "tox.ini [testenv] deps"),
        ("ddt==1.4.1", "Pipfile [dev-packages]")]
    assert not (repo / "RAN").exists()  # read with ast, never executed
    assert needs.requirement_files == ["requirements.txt"]  # pip reads it itself, as before
    assert any("pytest>=3" in n and "its own test runner" in n for n in needs.notes)
    assert any("`py27: unittest2`" in n for n in needs.notes)  # a factor's dependency: left out, said


def test_requirement_files_are_read_as_pip_reads_them(tmp_path):
    text = "# the test tools\ntinydep==1.0 \\\n    ; python_version >= '3'\n"
    assert decode(codecs.BOM_UTF16_LE + text.encode("utf-16-le")) == text
    assert decode(codecs.BOM_UTF8 + text.encode()) == text
    assert decode("# -*- coding: latin-1 -*-\nna\xefve\n".encode("latin-1")) == "# -*- coding: latin-1 -*-\nna\xefve\n"
    repo = write(tmp_path, {"requirements-test.txt": codecs.BOM_UTF16_LE + text.encode("utf-16-le"),
                            "test-requirements.txt": codecs.BOM_UTF8 + b"otherdep\n"})
    assert found(discover(repo)) == [("tinydep==1.0     ; python_version >= '3'", "requirements-test.txt"),
                                     ("otherdep", "test-requirements.txt")]


def test_addopts_options_map_to_their_plugins_and_a_missing_one_is_dropped_with_a_warning(tmp_path):
    repo = write(tmp_path, {
        "tox.ini": "[pytest]\naddopts = --cov calc --cov-report=term -n 4 --strict-markers -p pytest_mock --ff\n"
                   "asyncio_mode = auto\n",
        "setup.cfg": "[tool:pytest]\naddopts = --timeout 5\n",  # pytest reads tox.ini first: this one is moot
    })
    needs = discover(repo)
    assert needs.config == "tox.ini [pytest]"
    assert [(p["plugin"], p["options"]) for p in needs.plugins] == [
        ("pytest-cov", ["--cov", "--cov-report"]), ("pytest-xdist", ["-n"]), ("pytest-mock", ["-p"]),
        ("pytest-asyncio", [])]
    tokens, warnings = command_line(needs, {"pytest-cov", "pytest-xdist", "pytest-mock", "pytest-asyncio"})
    # all installed: only --ff goes (the sandbox runs without pytest's cache); coverage and xdist kept off
    assert tokens == ["-o", "addopts=--cov calc --cov-report=term -n 4 --strict-markers -p pytest_mock",
                      "--no-cov", "-n", "0"]
    assert warnings == ["warning: --ff dropped from tox.ini [pytest] addopts (pytest's cache is off in the sandbox)"]
    tokens, warnings = command_line(needs, {"pytest-mock"})
    assert tokens == ["-o", "addopts=--strict-markers -p pytest_mock"]
    assert warnings == ["warning: --cov calc --cov-report=term -n 4 --ff dropped from tox.ini [pytest] addopts "
                        "(its plugin could not be installed)"]
    assert command_line(discover(write(tmp_path / "plain", {"pytest.ini": "[pytest]\naddopts = -ra\n"})), set()) \
        == ([], [])


def test_pyproject_addopts_as_a_list_and_an_empty_pytest_ini_wins(tmp_path):
    repo = write(tmp_path, {"pyproject.toml": '[tool.pytest.ini_options]\naddopts = ["--cov=calc", "-q"]\n'})
    assert pytest_config(repo)[:2] == ("pyproject.toml [tool.pytest.ini_options]", ["--cov=calc", "-q"])
    write(repo, {"pytest.ini": ""})
    assert pytest_config(repo)[:2] == ("pytest.ini", [])


def test_markers_and_fixtures_the_tests_use_name_their_plugins_unless_the_repository_defines_them(tmp_path):
    repo = write(tmp_path, {
        "tests/test_a.py": "import pytest\n\n@pytest.mark.asyncio\nasync def test_a(mocker, tmp_path):\n    pass\n\n\n"
                           "def test_b(benchmark):\n    pass\n",
        "tests/conftest.py": "import pytest\n\n@pytest.fixture\ndef benchmark():\n    return None\n",
        "helpers.py": "def test_helper(requests_mock):\n    pass\n",  # not a test module
    })
    assert [(p["plugin"], p["source"]) for p in discover(repo).plugins] == [
        ("pytest-asyncio", "the marker @pytest.mark.asyncio in tests/test_a.py"),
        ("pytest-mock", "the fixture `mocker` in tests/test_a.py")]


def test_what_is_found_keys_the_dependency_image(tmp_path):
    repo = write(tmp_path, {"setup.py": "setup(name='x', extras_require={'docs': ['sphinx']})\n", "t.py": ""})
    before = dependency_key(repo, "img", install_project=False)
    write(repo, {"setup.py": "setup(name='x', extras_require={'docs': ['sphinx', 'furo']})\n"})
    assert dependency_key(repo, "img", install_project=False) == before  # not a test extra: the same image
    write(repo, {"setup.py": "setup(name='x', extras_require={'test': ['tinydep']})\n"})
    assert dependency_key(repo, "img", install_project=False) != before
    empty = write(tmp_path / "empty", {"t.py": ""})
    assert not discover(empty).found()  # nothing found: the key is the one of before discovery


def test_the_sandboxs_runner_stays_and_plugins_lose_their_pins():
    assert runner_safe("pytest==3.0") is None and runner_safe("pkg_resources==0.0.0") is None
    assert runner_safe("pytest-cov==2.5; python_version>'3'") == "pytest-cov"
    assert runner_safe(" six==1.15.0 ") == "six==1.15.0"
    # a freeze made on Windows: bindings that have no distribution for Linux (pip keeps a marked one out itself)
    assert runner_safe("pywin32==227") is None and runner_safe("pypiwin32==223") is None
    assert runner_safe("pywin32==227; sys_platform == 'win32'") == "pywin32==227; sys_platform == 'win32'"
    assert runner_safe("pywin32-ctypes==0.2.0") == "pywin32-ctypes==0.2.0"  # pure Python: installs anywhere


def test_the_nearest_version_with_a_wheel_is_the_next_newer_else_the_newest_older():
    assert nearest("5.7.0", ["5.6.1", "5.8.0", "5.9.0", "6.0.0rc1"]) == "5.8.0"
    assert nearest("9.9", ["1.0", "1.1"]) == "1.1"
    assert nearest("1.0", []) is None and nearest("dev", ["1.0"]) is None


def test_the_pins_probed_for_a_wheel_are_those_pips_failure_names():
    """An old freeze has many pins without a wheel that install from source; probing all of them
    took a pip call per such pin over the whole list (sanic's 140 pins: minutes per image)."""
    from repair_agent.sandbox.install_deps import failed_pins

    reqs = ["blinker==1.4", "numpy==1.18.4", "psutil==5.7.0", "six==1.15.0", "requests-async==0.5.0"]
    metadata = ("Collecting blinker==1.4\n  Using cached blinker-1.4.tar.gz (111 kB)\n  Preparing metadata (setup.py): "
                "finished with status 'done'\nCollecting numpy==1.18.4\n  Using cached numpy-1.18.4.zip (5.4 MB)\n"
                "  Preparing metadata (pyproject.toml): finished with status 'error'\n  error: subprocess-exited-with-error\n")
    assert failed_pins(metadata, reqs) == ["numpy==1.18.4"]
    built = "ERROR: Failed building wheel for psutil\nFailed to build psutil\nERROR: Could not build wheels for psutil\n"
    assert failed_pins(built, reqs) == ["psutil==5.7.0"]
    missing = ("ERROR: Could not find a version that satisfies the requirement requests-async==0.5.0 (from sanic) "
               "(from versions: 0.6.0)\nERROR: No matching distribution found for requests-async==0.5.0\n")
    assert failed_pins(missing, reqs) == ["requests-async==0.5.0"]
    assert failed_pins("ERROR: something else went wrong\n", reqs) == []


def test_the_release_of_a_file_pip_skipped_is_read_from_its_name():
    from repair_agent.sandbox.install_deps import SKIPPED, file_release, for_other_pythons, taken_down, withdrawn

    said = ("Skipping link: none of the wheel's tags (cp37-cp37m-manylinux1_x86_64) are compatible (run pip debug "
            "--verbose to show compatible tags): https://files.example/mysql_connector_python-8.0.19-cp37-cp37m-"
            "manylinux1_x86_64.whl#sha256=ab\n  Skipping link: 3.9.2 not in '>=3.10': file:///w/Foo.Bar-2.0RC1.tar.gz "
            "(from https://pypi.org/simple/foo-bar/) (requires-python:>=3.10)\n")  # as under an index page: indented
    assert [file_release(u) for u in SKIPPED.findall(said)] == [("mysql-connector-python", "8.0.19"),
                                                                ("foo-bar", "2.0rc1")]
    assert file_release("file:///w/torch-2.13.0%2Bcpu-cp311-cp311-linux_x86_64.whl") == ("torch", "2.13.0+cpu")
    assert file_release("file:///w/README.txt") is None
    assert withdrawn("8.0.19", ["8.0.5", "8.0.23"]) and not withdrawn("9.9", ["1.0"]) and not withdrawn("1.0", [])
    refused = ("ERROR: Ignored the following versions that require a different python version: 0.6.0 Requires-Python "
               ">=3.10; 0.6.1 Requires-Python >=3.10\nERROR: Could not find a version that satisfies the requirement "
               "requests-async==0.5.0 (from versions: 0.1.0, 0.2.4)\n")  # luigi's freeze, on Python 3.9
    assert for_other_pythons(refused) == ["0.6.0", "0.6.1"] and withdrawn("0.5.0", ["0.1.0", "0.2.4", "0.6.0", "0.6.1"])
    assert taken_down(refused, ["requests-async==0.5.0", "six==1.0"]) == {"requests-async==0.5.0": "requests-async==0.2.4"}
    assert taken_down(refused.replace("0.6", "0.1"), ["requests-async==0.5.0"]) == {}  # beyond every release: a typo


def test_a_pin_the_index_has_nothing_for_is_told_from_a_typo_and_from_an_index_out_of_reach():
    """An old freeze pins what the index no longer has (youtube-dl's PythonLabs==1.0.2: no
    distribution at all), or a development release installed from a checkout (ansible's
    ansible-base==2.10.0.dev0): those are left out. A release that never was (tinydep==9.9) stays an
    error, and so does pip's `none` when it could not reach the index."""
    from repair_agent.sandbox.install_deps import FROM_VERSIONS, not_on_index

    reqs = ["PythonLabs==1.0.2", "ansible-base==2.10.0.dev0", "tinydep==9.9", "six==1.15.0", "requests-async"]
    said = ("ERROR: Could not find a version that satisfies the requirement {} (from versions: {})\n"
            "ERROR: No matching distribution found for {}\n")
    assert not_on_index(said.format("PythonLabs==1.0.2", "none", "PythonLabs==1.0.2"), reqs) == {
        "PythonLabs==1.0.2": "the index has no distribution of it for this Python (pip: from versions: none)"}
    assert list(not_on_index(said.format("ansible-base==2.10.0.dev0", "2.10.0b1, 2.10.0", "x"), reqs)) == [
        "ansible-base==2.10.0.dev0"]
    assert not_on_index(said.format("tinydep==9.9", "1.0", "tinydep==9.9"), reqs) == {}
    assert not_on_index(said.format("requests-async", "none", "requests-async"), reqs) == {}  # not a pin
    offline = "WARNING: Retrying (Retry(total=4, ...)) after connection broken by 'NewConnectionError'\n"
    assert not_on_index(offline + said.format("six==1.15.0", "none", "six==1.15.0"), reqs) == {}
    legacy = ("ERROR: Could not find a version that satisfies the requirement PythonLabs==1.0.2 "
              "(from -r requirements.txt (line 3)) (from versions: none)\n")  # pip's legacy resolver
    assert FROM_VERSIONS.findall(legacy) == [("PythonLabs", "none")] and list(not_on_index(legacy, reqs)) == [
        "PythonLabs==1.0.2"]


def test_a_setup_py_of_python_2_is_a_note_not_a_failure(tmp_path):
    repo = write(tmp_path, {"setup.py": "print 'hello'\nsetup(name='old')\n", "requirements-test.txt": "mock\n"})
    needs = discover(repo)
    assert found(needs) == [("mock", "requirements-test.txt")]
    assert any(n.startswith("setup_py: not read (SyntaxError") for n in needs.notes)
    json.dumps(needs.to_dict())  # the record is JSON


def test_a_removed_pytest_api_the_tests_call_loads_the_compat_plugin_with_a_note(tmp_path):
    repo = write(tmp_path, {"tests/conftest.py": "import pytest\n\n@pytest.fixture(autouse=True)\ndef f(request):\n"
                                                 "    if request.node.get_marker('functional'):\n        pass\n",
                            "tests/test_a.py": "def test_a():\n    pass\n"})
    needs = discover(repo)
    assert needs.compat == [{"api": "Node.get_marker (removed in pytest 4.1)", "source": "tests/conftest.py"}]
    assert command_line(needs, set()) == (["-p", "repair_agent_pytest_compat"], [
        "note: the tests call Node.get_marker (removed in pytest 4.1) (tests/conftest.py): the sandbox's pytest "
        "gets it back (repair_agent_pytest_compat)"])
    before = dependency_key(repo, "img")
    write(repo, {"tests/conftest.py": "def f(request):\n    return request.node.get_closest_marker('functional')\n"})
    assert not discover(repo).found() and dependency_key(repo, "img") != before


def test_the_folders_a_project_keeps_its_packages_in_are_read_from_package_dir(tmp_path):
    from repair_agent.sandbox.test_deps import package_roots, project_name

    setup = ("from setuptools import setup, find_packages\nsetup(name='ansible-base', package_dir={'': 'lib',\n"
             "      'ansible_test': 'test/lib/ansible_test'}, packages=find_packages('lib'))\n")
    repo = write(tmp_path / "a", {"setup.py": setup, "lib/ansible/__init__.py": "", "test/lib/ansible_test/__init__.py": ""})
    assert package_roots(repo) == ["lib", "test/lib"] and discover(repo).package_roots == ["lib", "test/lib"]
    spread = ("from setuptools import setup\nstatic = dict(name='ansible-base', package_dir={'': 'lib'})\n\n\n"
              "def main():\n    params = dict(static, version='1')\n    setup(**params)\n")  # ansible's of 2020
    assert package_roots(write(tmp_path / "c", {"setup.py": spread, "lib/ansible/__init__.py": ""})) == ["lib"]
    assert project_name(tmp_path / "c") == "ansible-base"  # a freeze's pin of it is the tree itself
    src = write(tmp_path / "b", {"setup.cfg": "[options]\npackage_dir =\n    =src\n", "src/pkg/__init__.py": ""})
    assert package_roots(src) == []  # the root and src/ are on the sandbox's path already
