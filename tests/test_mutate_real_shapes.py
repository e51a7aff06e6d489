"""The fix shapes of real Python fixes (docs/fix_shapes.md, `search/fix_shapes.py`): on small code
written like the dev set's projects, the mutant a human fix made appears, and it equals the
expected file byte for byte (comments, continuations and newlines around the edit kept)."""

import pytest

from repair_agent.search import mutate
from repair_agent.search.mutate import SHAPES, mutants
from repair_agent.search.schedule import normalized


def assert_mutant(source: str, line: int, fixed: str) -> str:
    """The note of the mutant of `line` whose whole text is `fixed`."""
    for text, note in mutants(source, line):
        if text == fixed:
            return note
    near = [n for t, n in mutants(source, line)]
    raise AssertionError(f"no mutant of line {line} gives the fixed file; notes: {near}")


CASES = {
    "guard: the statement under `if x:`": (
        "def scale(total, n, unit_scale):\n"
        "    if unit_scale and unit_scale not in (True, 1):\n"
        "        total *= unit_scale   # None when unknown\n"
        "        n *= unit_scale\n"
        "    return total, n\n", 3,
        "def scale(total, n, unit_scale):\n"
        "    if unit_scale and unit_scale not in (True, 1):\n"
        "        if total:\n"
        "            total *= unit_scale   # None when unknown\n"
        "        n *= unit_scale\n"
        "    return total, n\n"),
    "guard: a return under `if x is not None:`": (
        "def unified(date_str):\n"
        "    upload_date = None\n"
        "    for fmt in FORMATS:\n"
        "        upload_date = parse(date_str, fmt)\n"
        "    return compat_str(upload_date)\n", 5,
        "def unified(date_str):\n"
        "    upload_date = None\n"
        "    for fmt in FORMATS:\n"
        "        upload_date = parse(date_str, fmt)\n"
        "    if upload_date is not None:\n"
        "        return compat_str(upload_date)\n"),
    "guard: the attribute a statement indexes, over a statement of two lines": (
        "class Commands:\n"
        "    def realise(self):\n"
        "        self._cached = [self._cached[0]] + sorted(\n"
        "            self._rest, key=lambda c: c.priority)\n"
        "        self._realised = True\n", 3,
        "class Commands:\n"
        "    def realise(self):\n"
        "        if self._cached:\n"
        "            self._cached = [self._cached[0]] + sorted(\n"
        "                self._rest, key=lambda c: c.priority)\n"
        "        self._realised = True\n"),
    "early return of the empty value of what the function returns": (
        "def bool_option(params, option, name):\n"
        "    value = params.get(name)\n"
        "    assert isinstance(value, bool)\n"
        "    return [option, 'true' if value else 'false']\n", 3,
        "def bool_option(params, option, name):\n"
        "    value = params.get(name)\n"
        "    if value is None:\n"
        "        return []\n"
        "    assert isinstance(value, bool)\n"
        "    return [option, 'true' if value else 'false']\n"),
    "regex: an anchor made a word boundary": (
        "import re\n\ndef get_new_command(command):\n"
        "    return re.sub('^mkdir (.*)', 'mkdir -p \\\\1', command.script)\n", 4,
        "import re\n\ndef get_new_command(command):\n"
        "    return re.sub('\\\\bmkdir (.*)', 'mkdir -p \\\\1', command.script)\n"),
    "regex: a negated class widened by a delimiter of the pattern": (
        "def unescape(s):\n"
        "    return re.sub(\n"
        "        r'&([^;]+;)', lambda m: transform(m.group(1)), s)\n", 3,
        "def unescape(s):\n"
        "    return re.sub(\n"
        "        r'&([^&;]+;)', lambda m: transform(m.group(1)), s)\n"),
    "regex: a negated class narrowed": (
        "def url_basename(url):\n"
        "    m = re.match(r'//[^/]+/(?:[^/?#]+/)?([^/?#]+)/?(?:[?#]|$)', url)  # path\n"
        "    return m.group(1) if m else ''\n", 2,
        "def url_basename(url):\n"
        "    m = re.match(r'//[^/]+/(?:[^?#]+/)?([^/?#]+)/?(?:[?#]|$)', url)  # path\n"
        "    return m.group(1) if m else ''\n"),
    "regex: a class that stops at the next delimiter": (
        "def match(command):\n"
        "    broken = re.findall(r'unknown command \\\"([a-z]+)\\\"', command.output)[0]\n"
        "    return broken\n", 2,
        "def match(command):\n"
        "    broken = re.findall(r'unknown command \\\"([^\\\"]+)\\\"', command.output)[0]\n"
        "    return broken\n"),
    "safer access: getattr with a default, inside a continued line": (
        "class Bar:\n"
        "    def __len__(self):\n"
        "        return len(self.iterable) if hasattr(self.iterable, '__len__') \\\n"
        "            else self.total\n", 4,
        "class Bar:\n"
        "    def __len__(self):\n"
        "        return len(self.iterable) if hasattr(self.iterable, '__len__') \\\n"
        "            else getattr(self, \"total\", None)\n"),
    "safer access: a key read with .get": (
        "def srt(para):\n    begin = parse_time(para.attrib['begin'])  # seconds\n    return begin\n", 2,
        "def srt(para):\n    begin = parse_time(para.attrib.get('begin'))  # seconds\n    return begin\n"),
    "a method of the same object for a slice and a concatenation": (
        "def get_new_command(command):\n    return 'open http://' + command.script[5:]\n", 2,
        "def get_new_command(command):\n    return command.script.replace('open ', 'open http://')\n"),
    "a separator literal for the os constant": (
        "import os\n\ndef executables():\n    return [p for p in os.environ.get('PATH', '').split(':')]\n", 4,
        "import os\n\ndef executables():\n    return [p for p in os.environ.get('PATH', '').split(os.pathsep)]\n"),
    "an argument moved to the call around it": (
        "def tenumerate(iterable, start=0, **kwargs):\n"
        "    return enumerate(tqdm_class(iterable, start, **kwargs))\n", 2,
        "def tenumerate(iterable, start=0, **kwargs):\n"
        "    return enumerate(tqdm_class(iterable, **kwargs), start)\n"),
    "a function value called with the lambda's parameters": (
        "def build(str_op, negate):\n"
        "    if negate:\n"
        "        op = lambda attr, value: not str_op\n"
        "    return op\n", 3,
        "def build(str_op, negate):\n"
        "    if negate:\n"
        "        op = lambda attr, value: not str_op(attr, value)\n"
        "    return op\n"),
    "a clause dropped from a condition, its parentheses kept": (
        "def match(command):\n"
        "    return ('did not match any file' in command.stderr\n"
        "            and \"forget to 'git add'\" in command.stderr)\n", 2,
        "def match(command):\n"
        "    return ('did not match any file' in command.stderr)\n"),
    "an exception widened": (
        "def code(numstr, base):\n"
        "    try:\n"
        "        return chr(int(numstr, base))\n"
        "    except ValueError:  # not a number\n"
        "        return None\n", 4,
        "def code(numstr, base):\n"
        "    try:\n"
        "        return chr(int(numstr, base))\n"
        "    except Exception:  # not a number\n"
        "        return None\n"),
    "a string literal for a like one of the module": (
        "def get_new_command(command):\n"
        "    return replace_argument(command.script, 'push', 'push --force')\n\n"
        "HELP = 'push --force-with-lease'\n", 2,
        "def get_new_command(command):\n"
        "    return replace_argument(command.script, 'push', 'push --force-with-lease')\n\n"
        "HELP = 'push --force-with-lease'\n"),
}


@pytest.mark.parametrize("name", CASES)
def test_the_real_fix_appears_with_every_other_byte_kept(name):
    source, line, fixed = CASES[name]
    assert normalized(fixed) is not None and fixed != source
    assert assert_mutant(source, line, fixed)


def test_a_guard_keeps_the_file_s_crlf_newlines():
    source = "def f(total, k):\r\n    total *= k\r\n    return total\r\n"
    assert_mutant(source, 2, "def f(total, k):\r\n    if total:\r\n        total *= k\r\n    return total\r\n")


def test_no_guard_indents_a_multi_line_string():
    source = 'def f(x):\n    x.write("""a\nb""")\n    return x\n'
    notes = [note for _, note in mutants(source, 2)]
    assert notes and not [n for n in notes if "guard" in n or "is None" in n]


def test_no_os_constant_without_os_in_the_module():
    source = "def f(s):\n    return s.split(':')\n"
    assert [n for _, n in mutants(source, 2)]
    assert not [n for _, n in mutants(source, 2) if "os." in n]
    assert [n for _, n in mutants("import os\n" + source, 3) if "os.pathsep" in n]


def test_the_operators_come_first_unchanged_and_the_shapes_are_bounded(monkeypatch):
    # a line where many shapes fit: regular expressions, attributes, names to guard on
    source = ("import os, re\n\nclass Bar:\n    def f(self, s, d):\n"
              "        out = re.sub(r'^a([^;/#]+)b$', self.sep, s.split(':')[1]) + d['k'] + self.tail\n"
              "        return out\n")
    every = list(mutants(source, 5))
    monkeypatch.setattr(mutate, "SHAPES", 0)
    operators = list(mutants(source, 5))
    assert every[:len(operators)] == operators  # the operator mutants, as before, in their order
    assert len(every) - len(operators) == SHAPES  # more shapes fit here than the bound lets through
