"""The `livecodebench:` task: releases, date windows and filters, LiveCodeBench's row format, the
offline and hub routes, and functional problems scored in the sandbox."""

from __future__ import annotations

import base64
import json
import pickle
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from prorl_eval.errors import UserError
from prorl_eval.fingerprints import task_fingerprint
from prorl_eval.tasks.code_lcb import RELEASES, build_lcb_task
from prorl_eval.tasks.options import TaskOptions

FIXTURES = Path(__file__).parent / "fixtures"
LCB_DIR = FIXTURES / "code" / "livecodebench"
OFFLINE = TaskOptions(data_dir=str(FIXTURES))
FENCE = "```"


def ids(argument: str, options: TaskOptions = OFFLINE) -> list[str]:
    return [p.id for p in build_lcb_task(argument, options).load()]


def test_releases_are_cumulative_files_and_vn_is_one_file():
    assert RELEASES["release_v1"] == ("test.jsonl",)
    assert RELEASES["release_v6"][-1] == "test6.jsonl" and len(RELEASES["release_v6"]) == 6
    assert RELEASES["v2"] == ("test2.jsonl",)
    assert ids("release_v1") == ["abc900_a", "2000A", "3001", "3002", "3003"]
    assert ids("release_v2") == [*ids("release_v1"), "abc901_b"]
    assert ids("v2") == ["abc901_b"]
    assert ids(str(LCB_DIR / "test2.jsonl"), TaskOptions()) == ["abc901_b"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("start=2024-09-15", ["2000A", "3002", "3003", "abc901_b"]),  # the start day is kept
        ("end=2024-09-15", ["abc900_a", "2000A", "3001"]),  # the end day too
        ("start=2024-08-15&end=2025-01-20", ["2000A", "3001", "3002", "3003"]),
        ("difficulty=easy", ["abc900_a", "3001"]),
        ("difficulty=medium,hard&platform=leetcode", ["3002", "3003"]),
        ("platform=atcoder,codeforces", ["abc900_a", "2000A", "abc901_b"]),
    ],
)
def test_filters_follow_livecodebench_s_date_window_and_tags(query, expected):
    assert ids(f"release_v2?{query}") == expected


def test_problems_carry_their_tags_and_tests_in_livecodebench_s_order():
    problems = {p.id: p for p in build_lcb_task("release_v2", OFFLINE).load()}
    stdin, functional = problems["abc900_a"], problems["3001"]
    assert stdin.metadata == {
        "title": "Add Two", "difficulty": "easy", "platform": "atcoder",
        "contest_date": "2024-08-10", "testtype": "stdin", "starter_code": "", "tests": 3,
    }  # fmt: skip
    # public first, then the private tests decoded from base64(zlib(pickle(json)))
    assert stdin.answer == {
        "inputs": ["1 2\n", "10 20\n", "-5 5\n"], "outputs": ["3\n", "30\n", "0\n"],
        "fn_name": None,
    }  # fmt: skip
    assert functional.metadata["testtype"] == "functional"
    assert functional.answer["fn_name"] == "pairSum"
    assert functional.answer["inputs"][0] == "[2,7,11,15]\n9"


def test_prompt_is_livecodebench_s_generic_template():
    task = build_lcb_task("release_v1", OFFLINE)
    problems = {p.id: p for p in task.load()}
    functional = task.prompt(problems["3001"])
    assert functional.startswith("### Question:\nReturn the indices")
    assert "following starter code" in functional and "def pairSum(self" in functional
    stdin = task.prompt(problems["abc900_a"])
    assert "Read the inputs from stdin" in stdin and "# YOUR CODE HERE" in stdin


def test_functional_and_stdin_solutions_score_by_tests_passed():
    task = build_lcb_task("release_v2", OFFLINE)
    problems = {p.id: p for p in task.load()}
    vowels = "class Solution:\n    def countVowels(self, s):\n"
    vowels += "        return sum(c in 'aeiou' for c in s)"
    assert task.score(f"{FENCE}python\n{vowels}\n{FENCE}", problems["3002"]).value == 1.0
    off_by_one = vowels.replace("for c in s)", "for c in s) + (s == 'xyz')")
    score = task.score(f"{FENCE}python\n{off_by_one}\n{FENCE}", problems["3002"])
    assert score.value == pytest.approx(2 / 3) and score.extra["tests"] == [True, False, True]
    assert "first failure: test 2: wrong answer" in score.reason
    assert task.score("no code here", problems["abc900_a"]).value == 0.0
    count = "for i in range(int(input())):\n    print(i + 1)"
    assert task.score(f"{FENCE}python\n{count}\n{FENCE}", problems["abc901_b"]).value == 1.0


def test_version_names_the_harness_the_files_and_the_time_rule():
    version = build_lcb_task("release_v2", OFFLINE).version
    harness, files, timeout, sandbox = version.split(";")
    assert harness.startswith("nvidia-livecodebench==26.3")
    assert files.startswith("test.jsonl#sha256=") and ",test2.jsonl#sha256=" in files
    assert (timeout, sandbox) == ("timeout=6s", "sandbox-v1")


def test_the_same_problems_and_fingerprints_in_another_process():
    """Loading is deterministic across interpreters (no hash-seed dependence)."""
    script = (
        "import json; from prorl_eval.tasks.code_lcb import build_lcb_task;"
        "from prorl_eval.tasks.options import TaskOptions;"
        "from prorl_eval.fingerprints import task_fingerprint;"
        f"t = build_lcb_task('release_v2', TaskOptions(data_dir={str(FIXTURES)!r}));"
        "print(json.dumps([[p.id, task_fingerprint(t, p)] for p in t.load()]))"
    )
    task = build_lcb_task("release_v2", OFFLINE)
    here = [[p.id, task_fingerprint(task, p)] for p in task.load()]
    for seed in ("1", "2"):
        env = {"PYTHONHASHSEED": seed, "PATH": ""}
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             env=env, check=True).stdout  # fmt: skip
        assert json.loads(out) == here


def test_hub_route_reads_the_release_files_by_name(monkeypatch):
    import huggingface_hub

    asked = []

    def download(repo_id, filename, repo_type=None):
        asked.append((repo_id, filename, repo_type))
        return str(LCB_DIR / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    assert ids("release_v2", TaskOptions()) == ids("release_v2")
    assert asked == [
        ("livecodebench/code_generation_lite", "test.jsonl", "dataset"),
        ("livecodebench/code_generation_lite", "test2.jsonl", "dataset"),
    ]

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(UserError, match=r"could not download .* pass --data-dir"):
        build_lcb_task("release_v1", TaskOptions()).load()


@pytest.mark.parametrize(
    ("argument", "fragment"),
    [
        ("release_v9", "unknown release"),
        ("release_v1?level=easy", "unknown option 'level'"),
        ("release_v1?difficulty=trivial", "unknown difficulty trivial"),
        ("release_v1?platform=kattis", "unknown platform kattis"),
        ("release_v1?start=June", "start must be a date"),
        ("release_v1?start=2025-01-01&end=2024-01-01", "is after end"),
        ("release_v1?start=2024-01-01&start=2024-02-01", "given twice"),
    ],
)
def test_bad_arguments_are_one_line_errors(argument, fragment):
    with pytest.raises(UserError, match=fragment):
        build_lcb_task(argument, OFFLINE)


def test_a_filter_that_matches_nothing_is_an_error():
    with pytest.raises(UserError, match=r"no problem of .* matches start=2026-01-01"):
        build_lcb_task("release_v2?start=2026-01-01", OFFLINE).load()


def test_a_missing_offline_copy_names_the_files(tmp_path):
    (tmp_path / "code" / "livecodebench").mkdir(parents=True)
    with pytest.raises(UserError, match=r"no offline copy of test\.jsonl, test2\.jsonl"):
        build_lcb_task("release_v2", TaskOptions(data_dir=str(tmp_path))).load()


def test_a_row_in_another_format_names_the_missing_field(tmp_path):
    row = json.loads((LCB_DIR / "test.jsonl").read_text().splitlines()[0])
    del row["contest_date"]
    path = tmp_path / "lcb.jsonl"
    path.write_text(json.dumps(row) + "\n")
    wanted = r"lcb\.jsonl row 0 is not in LiveCodeBench's format: it lacks contest_date"
    with pytest.raises(UserError, match=wanted):
        build_lcb_task(str(path), TaskOptions()).load()
    row["contest_date"], row["difficulty"] = "2024-08-10T00:00:00", "trivial"
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(UserError, match="LiveCodeBench cannot read it: ValueError"):
        build_lcb_task(str(path), TaskOptions()).load()


def test_compressed_private_tests_that_name_a_global_are_refused(tmp_path):
    """LiveCodeBench unpickles its private tests unrestricted; prorl refuses any global."""
    row = json.loads((LCB_DIR / "test.jsonl").read_text().splitlines()[0])
    row["private_test_cases"] = base64.b64encode(zlib.compress(pickle.dumps(print))).decode()
    path = tmp_path / "lcb.jsonl"
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(UserError, match=r"refusing global builtins\.print"):
        build_lcb_task(str(path), TaskOptions()).load()
