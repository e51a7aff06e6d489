"""The infill source: masks, prompt layouts per profile, answers cut and spliced, and real samples
from llama.cpp with SmolLM2 (the `model_server` fixtures)."""

from __future__ import annotations

import ast
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from model_server import llama_server, requires_llama_cpp, smollm_gguf  # noqa: E402,F401

from repair_agent.errors import ModelError  # noqa: E402
from repair_agent.llm.client import Completion, Generation, OpenAIModel  # noqa: E402
from repair_agent.llm.llamacpp import free_port  # noqa: E402
from repair_agent.llm.profiles import load_profile  # noqa: E402
from repair_agent.search import SearchContext, infill  # noqa: E402

AREA = '''import math

SCALE = 2


def area(r):
    d = r * 2
    return math.pi * d * SCALE


"""Area of a circle (the docstring after the code, as in QuixBugs)."""
'''
LINE = 7  # `    d = r * 2`


def _masks(text: str = AREA, line: int = LINE) -> dict[str, infill.Mask]:
    return {m.kind: m for m in infill.masks(text, line, ast.parse(text))}


def _context(kind: str = "line", text: str = AREA, line: int = LINE, budget: int = 4096) -> tuple[str, str]:
    return infill.context(text.splitlines(keepends=True), ast.parse(text), _masks(text, line)[kind], budget)


# -- masks and prompts ---------------------------------------------------------------------------
def test_masks_in_order_line_before_after_hunk():
    masks = infill.masks(AREA, LINE, ast.parse(AREA))
    assert [(m.kind, m.start, m.end, m.indent, m.lines) for m in masks] == [
        ("line", 7, 7, "    ", 1), ("before", 7, 6, "    ", 1), ("after", 8, 7, "    ", 1), ("hunk", 7, 8, "    ", 2)]


def test_masks_follow_logical_lines_blocks_and_returns():
    text = "def f(xs):\n    total = sum(\n        xs)\n    if total:\n        return total\n    return 0\n"
    tree = ast.parse(text)
    line = {m.kind: (m.start, m.end) for m in infill.masks(text, 3, tree)}
    assert line["line"] == (2, 3)  # the whole statement, from its continuation line
    after_if = {m.kind: m for m in infill.masks(text, 4, tree)}["after"]
    assert (after_if.start, after_if.indent) == (5, "        ")  # into the block the `if` opens
    assert "after" not in {m.kind for m in infill.masks(text, 5, tree)}  # after a return: dead code
    assert "before" not in {m.kind for m in infill.masks(text, 1, tree)}  # nothing before the def
    assert infill.masks(text + "# note\n", 7, ast.parse(text)) == []  # a comment line


def test_prompt_keeps_the_function_imports_names_and_docstring_not_other_functions():
    text = AREA + "\n\ndef other():\n    return 'not shown'\n"
    prefix, suffix = _context(text=text)
    assert prefix == "import math\nSCALE = 2\n\ndef area(r):\n    # buggy: d = r * 2\n"
    assert suffix == ("    return math.pi * d * SCALE\n\n"
                      '"""Area of a circle (the docstring after the code, as in QuixBugs)."""\n')
    assert "other" not in prefix + suffix


def test_prompt_budget_trims_the_lines_farthest_from_the_hole():
    body = "".join(f"    x{i} = {i}\n" for i in range(200))
    text = f"def big():\n{body}    return x0\n"
    prefix, suffix = infill.context(text.splitlines(keepends=True), ast.parse(text),
                                    _masks(text, 102)["line"], budget=300)
    assert prefix.endswith("    x99 = 99\n    # buggy: x100 = 100\n")
    assert suffix.startswith("    x101 = 101\n")
    assert len(prefix) + len(suffix) <= 300 + len("    # buggy: x100 = 100\n")
    assert "def big" not in prefix


def test_fim_layout_of_qwen_and_semcoder_profiles():
    prefix, suffix = _context()
    qwen = load_profile("qwen2.5-coder").infill
    assert infill.fim_prompt(qwen.fim, prefix, suffix) == (
        "<|fim_prefix|>import math\nSCALE = 2\n\ndef area(r):\n    # buggy: d = r * 2\n"
        "<|fim_suffix|>    return math.pi * d * SCALE\n\n"
        '"""Area of a circle (the docstring after the code, as in QuixBugs)."""\n<|fim_middle|>')
    semcoder = load_profile("semcoder").infill
    assert infill.fim_prompt(semcoder.fim, prefix, suffix) == (  # the bars are U+FF5C, the blank U+2581
        "<｜fim▁begin｜>import math\nSCALE = 2\n\ndef area(r):\n    # buggy: d = r * 2\n"
        "<｜fim▁hole｜>    return math.pi * d * SCALE\n\n"
        '"""Area of a circle (the docstring after the code, as in QuixBugs)."""\n<｜fim▁end｜>')
    assert (qwen.max_tokens, qwen.temperature) == (48, 0.8)
    assert load_profile("generic-chat").infill.fim == ""


def test_chat_cloze_layout_of_the_generic_profile():
    prefix, suffix = _context()
    messages = load_profile("generic-chat").render(infill.chat_prompt(prefix, suffix, _masks()["line"]))
    assert messages == [{"role": "user", "content": (
        "The Python code below has a bug. Write the code that goes where `<FILL>` stands: exactly one line. "
        "The lines marked `# buggy:` above it show what is there now.\nAnswer with the code only.\n\n"
        "```python\nimport math\nSCALE = 2\n\ndef area(r):\n    # buggy: d = r * 2\n    <FILL>\n"
        "    return math.pi * d * SCALE\n\n"
        '"""Area of a circle (the docstring after the code, as in QuixBugs)."""\n```\n')}]
    hunk = infill.chat_prompt(*_context("before"), _masks()["before"])[0]["content"]
    assert "at most" not in hunk and "# buggy:" not in hunk  # an inserted line has nothing to hint


def _recorder(asked: list, answers: list[str]):
    class Recorder:
        name = "recorder"

        def complete(self, prompt, sampling, logprobs=False):
            asked.append((prompt, sampling, logprobs))
            texts = (answers * sampling.n)[:sampling.n]
            return Generation(completions=[Completion(text=t, finish_reason="stop") for t in texts],
                              prompt_tokens=100 * sampling.n, requests=sampling.n)
    return Recorder()


def test_requests_per_mask(tmp_path):
    """What the source asks the model for (a recorder of the requests, no answers judged)."""
    asked: list = []
    (tmp_path / "area.py").write_text(AREA)
    ctx = SearchContext(root=tmp_path, settings=SimpleNamespace(seed=7, infill_samples=5), model=_recorder(asked, []),
                        profile=load_profile("qwen2.5-coder"), log=lambda msg: None)
    assert list(infill.candidates({"file": "area.py", "function": "area", "line": LINE, "score": 1.0}, ctx)) == []
    qwen_stop = ["<|endoftext|>", "<|fim_pad|>", "<|file_sep|>", "<|im_end|>"]
    # the first batch of each mask only: its samples all agreed (on nothing), so no second batch
    assert [(s.n, s.temperature, s.top_p, s.seed, s.max_tokens, s.stop, lp) for _, s, lp in asked] == [
        (2, 0.8, 0.95, 7, 48, qwen_stop + ["\n"], True), (2, 0.8, 0.95, 7, 48, qwen_stop + ["\n"], True),
        (2, 0.8, 0.95, 7, 48, qwen_stop + ["\n"], True),
        (2, 0.8, 0.95, 7, 96, qwen_stop + ["\n\n", '\n"""Area of a circle (the docstring after the code, as in QuixBugs)."""'],
         True)]
    assert ctx.tokens == {"prompt": 400, "completion": 0}  # each prompt once, though asked twice


def test_second_batch_only_where_the_first_disagrees(tmp_path):
    (tmp_path / "area.py").write_text(AREA)
    loc = {"file": "area.py", "function": "area", "line": LINE, "score": 1.0}
    for answers, batches in ((["d = r * 3"], [4]), (["d = r * 3", "d = r + r"], [4, 4])):
        asked: list = []
        ctx = SearchContext(root=tmp_path, settings=SimpleNamespace(seed=7, infill_samples=8),
                            model=_recorder(asked, answers), profile=load_profile("qwen2.5-coder"), log=lambda m: None)
        edits = infill.candidates(loc, ctx)
        first = next(edits)  # tested before the second batch is asked for: a fix there saves it
        assert first["note"].strip() in answers and len(asked) == 1
        list(edits)
        line_mask = [s for p, s, _ in asked if s.max_tokens == 48][:len(batches)]
        assert [s.n for s in line_mask] == batches and [s.seed for s in line_mask] == [7, 11][:len(batches)]
        assert ctx.tokens["prompt"] == 4 * 100  # one prompt per mask, whatever the batches
    asked = []  # a first batch of one sample cannot disagree: the second is always asked for
    ctx = SearchContext(root=tmp_path, settings=SimpleNamespace(seed=7, infill_samples=2),
                        model=_recorder(asked, ["d = r * 3"]), profile=load_profile("qwen2.5-coder"), log=lambda m: None)
    list(infill.candidates(loc, ctx))
    assert [s.n for _, s, _ in asked][:2] == [1, 1]


# -- answers ------------------------------------------------------------------------------------
def test_cut_takes_code_lines_only():
    assert infill.cut("```python\n    d = r * 3  # fixed\n```", 1) == ["    d = r * 3"]
    assert infill.cut("# buggy: d = r * 2\n\n  d = r  \nmore\nignored", 2) == ["  d = r", "more"]
    assert infill.cut("x = '#'  # c", 1) == ["x = '#'"]
    assert infill.cut("\n", 1) == []


def test_reindent_keeps_relative_indentation():
    assert infill.reindent(["if d:", "  d += 1"], "        ") == ["        if d:", "          d += 1"]
    assert infill.reindent(["d = r"], "\t") == ["\td = r"]


def test_splice_changes_only_the_masked_lines_and_keeps_line_endings():
    crlf = AREA.replace("\n", "\r\n")
    lines = crlf.splitlines(keepends=True)
    out = infill.splice(lines, _masks()["line"], ["    d = r * 3"])
    assert out == crlf.replace("d = r * 2", "d = r * 3")
    before = infill.splice(lines, _masks()["before"], ["    r = abs(r)"])
    assert before == crlf.replace("    d = r * 2", "    r = abs(r)\r\n    d = r * 2")
    no_newline = "def f():\n    return 1"
    mask = infill.Mask("after", 3, 2, "    ", 1)
    assert infill.splice(no_newline.splitlines(keepends=True), mask, ["    pass"]) == no_newline + "\n    pass\n"


def test_ranked_by_logprob_then_frequency_deduplicated():
    mask = _masks()["line"]
    comps = [Completion(text="d = r", finish_reason="stop", logprob=-2.0),
             Completion(text="  d = r * 3", finish_reason="stop", logprob=-0.5),
             Completion(text="d = r", finish_reason="stop", logprob=-2.0),
             Completion(text="", finish_reason="stop", logprob=-0.1)]
    assert infill.ranked(comps, mask) == [(["    d = r * 3"], -0.5), (["    d = r"], -2.0)]
    plain = [Completion(text=t, finish_reason="stop") for t in ("a = 1", "b = 2", "b = 2")]
    assert [new for new, _ in infill.ranked(plain, mask)] == [["    b = 2"], ["    a = 1"]]


# -- the source against a real model -------------------------------------------------------------
def _run(tmp_path: Path, model, profile: str, samples: int = 4) -> tuple[list[dict], SearchContext]:
    (tmp_path / "area.py").write_text(AREA)
    logs: list[str] = []
    prof = load_profile(profile)
    prof = replace(prof, infill=replace(prof.infill, max_tokens=32))  # SmolLM2 rambles: keep the test short
    ctx = SearchContext(root=tmp_path, settings=SimpleNamespace(seed=0, infill_samples=samples), model=model,
                        profile=prof, log=logs.append)
    edits = list(infill.candidates({"file": "area.py", "function": "area", "line": LINE, "score": 1.0}, ctx))
    assert len(logs) >= 4 and all(f"{samples // 2} samples" in line for line in logs), logs
    return edits, ctx


def _check_in_place(edits: list[dict]) -> None:
    """Every edit parses, is distinct, and changes only the masked line (or adds one line)."""
    old = AREA.splitlines()
    assert len({ast.dump(ast.parse(e["text"])) for e in edits}) == len(edits)
    for e in edits:
        assert e["source"] == "infill" and e["file"] == "area.py" and e["line"] == LINE
        new = e["text"].splitlines()
        added = [n for n in new if n not in old]
        assert e["note"].split("\n") == added or e["note"] in old, e  # (a line copied from elsewhere)
        first, *rest = e["note"].split("\n")  # at the masked line's indentation; a hunk's others relative to it
        assert first.startswith("    ") and not first.startswith("     ") and all(r.startswith("    ") for r in rest)
        if len(new) == len(old):  # a replaced line: all other bytes are the original's
            assert [i for i, (a, b) in enumerate(zip(old, new)) if a != b] in ([LINE - 1], [LINE - 1, LINE])
        else:  # an inserted line before or after the masked one
            assert len(new) == len(old) + 1 and new[:LINE - 1] == old[:LINE - 1] and new[LINE + 1:] == old[LINE:]


@pytest.mark.model
@requires_llama_cpp
def test_fim_samples_from_the_real_server(llama_server, tmp_path):
    model = OpenAIModel(llama_server.base_url, batch_n=False)  # llama.cpp takes no `n`, as in factory
    edits, ctx = _run(tmp_path, model, "qwen2.5-coder")  # SmolLM2 does not know Qwen's FIM tokens: any text
    assert edits, "SmolLM2 gave no parseable line in its samples"
    _check_in_place(edits)
    # started without logits_all (slow in llama-cpp-python): the server refuses logprobs, samples are unranked
    assert model.logprobs is False and all(e.get("logprob") is None for e in edits)
    assert 0 < ctx.tokens["completion"] <= (3 * 32 + 64) * 4  # max_tokens per line and mask
    assert 4 * 60 < ctx.tokens["prompt"] < 4 * 200  # each mask's prompt once, not once per sample


@pytest.mark.model
@requires_llama_cpp
def test_fim_samples_in_process_with_logprobs(smollm_gguf, tmp_path):
    from repair_agent.llm.llamacpp import LlamaCppModel

    model = LlamaCppModel(smollm_gguf, n_ctx=1024, logits_all=True)
    edits, _ = _run(tmp_path, model, "qwen2.5-coder", samples=2)
    assert edits
    _check_in_place(edits)
    assert all(e["logprob"] < 0 for e in edits)


@pytest.mark.model
@requires_llama_cpp
def test_chat_cloze_samples_from_the_real_server(llama_server, tmp_path):
    edits, ctx = _run(tmp_path, OpenAIModel(llama_server.base_url, batch_n=False), "generic-chat")
    assert edits, "SmolLM2 gave no parseable line in its chat answers"
    _check_in_place(edits)
    assert all("logprob" not in e for e in edits)
    assert ctx.tokens["prompt"] > 0 and ctx.tokens["completion"] > 0


def test_a_model_error_propagates(tmp_path):
    dead = OpenAIModel(f"http://127.0.0.1:{free_port()}/v1", name="qwen", retries=0, timeout=5)
    (tmp_path / "area.py").write_text(AREA)
    ctx = SearchContext(root=tmp_path, settings=SimpleNamespace(seed=0), model=dead, log=lambda msg: None)
    with pytest.raises(ModelError, match="connection refused"):
        next(infill.candidates({"file": "area.py", "function": "area", "line": LINE, "score": 1.0}, ctx))


def test_no_model_no_candidates(tmp_path):
    (tmp_path / "area.py").write_text(AREA)
    logs: list[str] = []
    ctx = SearchContext(root=tmp_path, settings=SimpleNamespace(), log=logs.append)
    assert list(infill.candidates({"file": "area.py", "function": "area", "line": LINE, "score": 1.0}, ctx)) == []
    assert logs == ["infill skipped: no model"]


@pytest.mark.model
@requires_llama_cpp
def test_a_hole_whose_prompt_does_not_fit_the_context_is_skipped(smollm_gguf, tmp_path):
    """A model with a smaller context than the prompt budget assumes: every hole is skipped with the
    reason, and the search goes on (the PromptTooLong used to end the task)."""
    from repair_agent.llm.llamacpp import LlamaCppModel

    (tmp_path / "area.py").write_text(AREA)
    logs: list[str] = []
    ctx = SearchContext(root=tmp_path, settings=SimpleNamespace(seed=0, infill_samples=2),
                        model=LlamaCppModel(smollm_gguf, name="tiny-ctx", n_ctx=32),
                        profile=load_profile("qwen2.5-coder"), log=logs.append)
    assert list(infill.candidates({"file": "area.py", "function": "area", "line": LINE, "score": 1.0}, ctx)) == []
    assert len(logs) >= 3 and all("refused the request" in line and "n_ctx) is 32" in line for line in logs), logs
