"""From a model's answer to a patched file: code extraction and definition replacement, on answer
shapes that the embedded 0.5B model wrote in QuixBugs runs."""

from __future__ import annotations

import textwrap

from repair_agent.answers import extract_code
from repair_agent.patching import replace_definitions

BUGGY = textwrap.dedent("""\
    def find_in_sorted(arr, x):
        def binsearch(start, end):
            if start == end:
                return -1
            mid = start + (end - start) // 2
            if x < arr[mid]:
                return binsearch(start, mid)
            elif x > arr[mid]:
                return binsearch(mid, end)
            else:
                return mid

        return binsearch(0, len(arr))
    """)


def test_code_is_found_when_a_fence_opened_around_the_prose_never_closes():
    answer = ("```python\n### MONOLOGUE\nThe recursion never stops.\n\n"
              "```python\ndef gcd(a, b):\n    if b == 0:\n        return a\n    return gcd(b, a % b)\n```\n\n"
              "This fixes it.")
    assert extract_code(answer) == "def gcd(a, b):\n    if b == 0:\n        return a\n    return gcd(b, a % b)\n"


def test_an_unclosed_block_is_not_taken_from_a_cut_answer():
    answer = "```python\n### MONOLOGUE\nprose\n```python\ndef gcd(a, b):\n    if b == 0:\n        return a\n"
    assert extract_code(answer, closed_only=True) == ""
    assert extract_code(answer).startswith("def gcd(a, b):")


def test_prose_inside_a_block_is_never_code():
    assert extract_code("```python\nThe bug is in line 3.\n```\nNo code here.") == ""


def test_a_nested_helper_written_at_top_level_replaces_the_nested_one():
    helper = textwrap.dedent("".join(BUGGY.splitlines(keepends=True)[1:11]))  # `def binsearch` dedented
    assert helper.startswith("def binsearch(start, end):")
    patched = replace_definitions(BUGGY, helper.replace("binsearch(mid, end)", "binsearch(mid + 1, end)"))
    assert patched == BUGGY.replace("binsearch(mid, end)", "binsearch(mid + 1, end)")


def test_the_outer_function_wins_over_a_copy_of_its_nested_helper():
    helper = "def binsearch(start, end):\n    return -2\n"  # a stray top-level copy, then the whole fix
    outer = BUGGY.replace("binsearch(mid, end)", "binsearch(mid + 1, end)")
    assert replace_definitions(BUGGY, helper + "\n" + outer) == outer


def test_a_function_written_twice_takes_the_last_version():
    source = "def f(x):\n    return x\n"
    code = "def f(x):\n    return x + 1\n\n\ndef f(x):\n    return x + 2\n"
    assert replace_definitions(source, code) == "def f(x):\n    return x + 2\n"
