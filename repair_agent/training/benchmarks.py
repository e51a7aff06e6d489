"""Benchmark code is never training data: QuixBugs, HumanEval(Fix) and BugsInPy's projects.

Three checks, each cheap and each saying what it found:

- QuixBugs, by content: the normalized text (`normalize.function_keys`: parsed, docstrings dropped,
  unparsed) of every function of at least two lines in the shipped programs, buggy and fixed
  (`repair_agent/data/quixbugs`). A function equal to one of them is QuixBugs code whatever its
  file is called; reformatting or comments do not hide it.
- HumanEval (and HumanEvalFix, which reuses its functions), by name: a module-level function named
  like one of HumanEval's entry points. Names that ordinary code uses too (`add`, `median`,
  `is_prime`...) are left out of the list: they would refuse half the package index. HumanEval's
  data is not shipped, so its content cannot be hashed here.
- BugsInPy, by project: a repository whose distribution name, top-level package or git remote is
  one of BugsInPy's 17 projects, and a file under such a package (`youtube_dl/...`).

`refusal(...)` returns the first reason found, or "" for clean code.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
from functools import lru_cache
from pathlib import Path

from .normalize import function_keys

# BugsInPy's projects (BugsInPy/projects/*): project -> its top-level package
BUGSINPY_PACKAGES = {
    "ansible": "ansible", "black": "black", "cookiecutter": "cookiecutter", "fastapi": "fastapi",
    "httpie": "httpie", "keras": "keras", "luigi": "luigi", "matplotlib": "matplotlib", "pandas": "pandas",
    "pysnooper": "pysnooper", "sanic": "sanic", "scrapy": "scrapy", "spacy": "spacy", "thefuck": "thefuck",
    "tornado": "tornado", "tqdm": "tqdm", "youtube-dl": "youtube_dl",
}

# HumanEval's entry points (HumanEval/0..163), the names ordinary code also uses left out (among them
# intersperse, get_row, is_nested and closest_integer: found in 6 of 121 packages of our environment)
HUMANEVAL_NAMES = frozenset("""
has_close_elements separate_paren_groups truncate_number below_zero mean_absolute_deviation
parse_nested_parens filter_by_substring sum_product rolling_max make_palindrome string_xor
greatest_common_divisor all_prefixes string_sequence count_distinct_characters parse_music how_many_times
sort_numbers find_closest_elements rescale_to_unit filter_integers largest_divisor filter_by_prefix
get_positive find_zero sort_third sort_even decode_cyclic encode_cyclic prime_fib triples_sum_to_zero
car_race_collision incr_list pairs_sum_to_zero change_base fib4 decode_shift encode_shift remove_vowels
below_threshold same_chars correct_bracketing largest_prime_factor sum_to_n fibfib vowels_count
circular_shift digitSum fruit_distribution strange_sort_list will_it_fly smallest_change total_match
is_multiply_prime is_simple_power iscube hex_key decimal_to_binary is_happy numerical_letter_grade
prime_length starts_one_ends anti_shuffle next_smallest is_bored any_int skjkasdkd
check_dict_case count_up_to count_upper make_a_pile words_string choose_num rounded_avg
unique_digits by_length even_odd_palindrome count_nums move_one_ball reverse_delete odd_count
minSubArraySum max_fill select_words get_closest_vowel match_parens add_elements get_odd_collatz
check_if_last_char_is_a_letter can_arrange largest_smallest_integers compare_one
is_equal_to_sum_even special_factorial fix_spaces file_name_check words_in_sentence order_by_points
specialFilter get_max_triples sorted_list_sum x_or_y double_the_difference Strongest_Extension
cycpattern_check even_odd_count int_to_mini_roman right_angle_triangle find_max do_algebra
string_to_md5 generate_integers
""".split())


@lru_cache(maxsize=1)
def quixbugs_functions() -> dict[str, str]:
    """Normalized function text -> "quixbugs:PROGRAM", for QuixBugs' buggy and fixed programs."""
    from ..bench.datasets import quixbugs_dir
    out: dict[str, str] = {}
    path = quixbugs_dir() / "quixbugs_python.jsonl"
    for line in path.read_text(encoding="utf-8").splitlines() if path.is_file() else []:
        if line.strip():
            rec = json.loads(line)
            for source in (rec.get("buggy_source", ""), rec.get("fixed_source", "")):
                for key in function_keys(source):
                    if key.count("\n") >= 1:  # a one-line helper is too generic to call contaminated
                        out.setdefault(key, f"quixbugs:{rec['id']}")
    return out


def code_refusal(code: str, path: str = "") -> str:
    """Why `code` (a file's text or a localized context) is benchmark code, or "" when it is not."""
    top = Path(path).parts[:2] if path else ()
    for part in top[:1] + (top[1:] if top[:1] == ("src",) else ()):
        project = next((p for p, pkg in BUGSINPY_PACKAGES.items() if pkg == part), None)
        if project:
            return f"bugsinpy:{project} ({path})"
    known = quixbugs_functions()
    hit = next((known[k] for k in function_keys(code) if k in known), None)
    if hit:
        return hit
    try:  # HumanEval's entry points are module-level functions, never methods
        names = {n.name for n in ast.parse(code).body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    except (SyntaxError, ValueError):
        names = set(re.findall(r"^def\s+(\w+)", code, re.M))
    named = sorted(names & HUMANEVAL_NAMES)
    return f"humanevalfix:{named[0]}" if named else ""


def _project_names(repo: Path) -> set[str]:
    """The repository's distribution names, top-level packages and git remote's repository name."""
    names: set[str] = set()
    for meta in ("pyproject.toml", "setup.cfg", "setup.py"):
        try:
            text = (repo / meta).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        names.update(re.findall(r"""^\s*name\s*[=:]\s*["']?([A-Za-z0-9_.-]+)""", text, re.M))
        names.update(re.findall(r"""\bname\s*=\s*["']([A-Za-z0-9_.-]+)["']""", text))
    for root in (repo, repo / "src"):
        if root.is_dir():
            names.update(p.parent.name for p in root.glob("*/__init__.py"))
    try:
        url = subprocess.run(["git", "config", "--get", "remote.origin.url"], cwd=repo, capture_output=True,
                             text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        url = ""
    if url:
        names.add(re.sub(r"\.git$", "", url.rstrip("/")).rsplit("/", 1)[-1])
    return {re.sub(r"[-_.]+", "-", n).lower() for n in names}


def repo_refusal(repo: Path, files: list[str]) -> str:
    """Why the repository at `repo` (its Python `files`, relative) is benchmark code, or ""."""
    repo = Path(repo)
    packages = {re.sub(r"[-_.]+", "-", pkg) for pkg in BUGSINPY_PACKAGES.values()}
    project = next((n for n in sorted(_project_names(repo)) if n in BUGSINPY_PACKAGES or n in packages), None)
    if project:
        return f"bugsinpy:{project}"
    for rel in files:
        try:
            text = (repo / rel).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        why = code_refusal(text, rel)
        if why:
            return f"{why} ({rel})" if "(" not in why else why
    return ""
