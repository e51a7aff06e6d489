"""A pytest plugin that gives back the pytest APIs that old test suites call and newer pytest
removed (the sandbox brings its own, newer pytest), and the Python APIs they call that the sandbox's
Python no longer has. test_deps finds the calls in a tree's test
files; the dependency build copies this file into the tools venv as COMPAT_MODULE, and the image's
PYTEST_ADDOPTS loads it (`-p`). Each old name calls its replacement; nose's test hooks are called
as pytest 7 called them."""

import functools
import sys

import _pytest.fixtures
import pytest
from _pytest.fixtures import FixtureRequest
from _pytest.nodes import Node

if not hasattr(Node, "get_marker"):  # removed in pytest 4.1
    Node.get_marker = lambda self, name: self.get_closest_marker(name)
if not hasattr(FixtureRequest, "getfuncargvalue"):  # removed in pytest 4.0
    FixtureRequest.getfuncargvalue = lambda self, name: self.getfixturevalue(name)
if not hasattr(sys, "setcheckinterval"):  # removed in Python 3.9; it did nothing since 3.2 (the new GIL)
    sys.setcheckinterval = lambda interval: None

try:  # pytest 8 collects a unittest class through an instance made with "runTest" (UnitTestCase.newinstance)
    from _pytest.unittest import UnitTestCase
except ImportError:  # an older pytest: it used the class itself
    UnitTestCase = None
if UnitTestCase is not None and hasattr(UnitTestCase, "newinstance"):
    _newinstance = UnitTestCase.newinstance

    def _any_instance(self):
        """An old TestCase whose __init__ needs a real test method (tornado's AsyncTestCase before 5.1:
        `getattr(self, methodName)`) refuses "runTest": an instance without __init__ serves
        collection's fixture scan, as the class itself did before pytest 8."""
        try:
            return _newinstance(self)
        except AttributeError:
            import unittest

            instance = self.obj.__new__(self.obj)
            unittest.TestCase.__init__(instance, "runTest")  # unittest's own: "runTest" is its no-op name
            return instance

    UnitTestCase.newinstance = _any_instance

from _pytest.fixtures import FixtureFunctionMarker

try:  # pytest 8.4's fixture object; before it, a wrapped function marked `_pytestfixturefunction`
    from _pytest.fixtures import FixtureFunctionDefinition
except ImportError:
    FixtureFunctionDefinition = None
_mark = FixtureFunctionMarker.__call__


def _remark(self, function):
    """`pytest.fixture(autouse=True)(plugin_fixture)` (httpie's conftest of 2020, over
    pytest-httpbin's fixture), refused since pytest 8.0: the function under the fixture gets the
    new marker, as before."""
    if FixtureFunctionDefinition is not None and isinstance(function, FixtureFunctionDefinition):
        function = function._fixture_function
    elif getattr(function, "_pytestfixturefunction", False) and hasattr(function, "__pytest_wrapped__"):
        function = function.__pytest_wrapped__.obj
    return _mark(self, function)


FixtureFunctionMarker.__call__ = _remark

# a fixture called directly: an error since pytest 4.0, before it a call
if FixtureFunctionDefinition is not None:  # pytest 8.4: the fixture is this object
    FixtureFunctionDefinition.__call__ = lambda self, *args, **kwargs: self._fixture_function(*args, **kwargs)
elif hasattr(_pytest.fixtures, "wrap_function_to_error_out_if_called_directly"):  # 4.0 to 8.3: a wrapper that fails
    _failing_wrapper = _pytest.fixtures.wrap_function_to_error_out_if_called_directly

    def _calling_wrapper(function, marker):
        """pytest's wrapper with its attributes (the real function for pytest to call), but one that
        calls the function: a new object each time, as `pytest.fixture(...)(f)` twice needs."""
        failing = _failing_wrapper(function, marker)

        @functools.wraps(failing)
        def wrapper(*args, **kwargs):
            return function(*args, **kwargs)
        return wrapper

    _pytest.fixtures.wrap_function_to_error_out_if_called_directly = _calling_wrapper


def _call_nose_hook(function, name: str) -> None:
    """Call `function.<name>` as pytest 7's nose plugin did: only a plain callable, never a fixture."""
    hook = getattr(function, name, None)
    if callable(hook) and not hasattr(hook, "_pytestfixturefunction") and \
            (FixtureFunctionDefinition is None or not isinstance(hook, FixtureFunctionDefinition)):
        hook()


def _nose_runtest_setup(item):
    """nose's `@with_setup(setup, teardown)` (tqdm's tests of 2020: `pretest` clears the bars that
    earlier tests left) sets the test function's `setup` and `teardown`, which pytest called until
    8.0 dropped its nose support; unittest's own tests keep their setUp alone."""
    function = getattr(item, "obj", None)
    if function is None or type(item).__name__ == "TestCaseFunction":
        return
    _call_nose_hook(function, "setup")
    item.addfinalizer(lambda: _call_nose_hook(function, "teardown"))


if int(pytest.__version__.split(".")[0]) >= 8:  # before 8.0 pytest's own nose plugin calls them
    # last, as nose's was: the item's own setup (and its finalizer stack) comes first
    pytest_runtest_setup = pytest.hookimpl(trylast=True)(_nose_runtest_setup)
