"""Every verifier says which answer it extracted and compared, and how it found it."""

from __future__ import annotations

import pytest

from prorl_eval.tasks.custom import build_custom_task
from prorl_eval.tasks.gym import build_gym_task
from prorl_eval.tasks.math_answer import verify_math
from prorl_eval.tasks.options import TaskOptions
from prorl_eval.tasks.stem import score_choice


@pytest.mark.parametrize(
    ("response", "answer", "extraction", "value"),
    [
        ("So \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}", "math-verify: last \\boxed{}", 1.0),
        ("The answer is 0.5", "0.5", "math-verify: answer statement or last expression", 1.0),
        ("\\boxed{3}", "3", "math-verify: last \\boxed{}", 0.0),
        ("I do not know.", None, "none found (math-verify)", 0.0),
    ],
)
def test_math_records_math_verify_s_answer_in_full(response, answer, extraction, value):
    score = verify_math(response, "1/2")
    assert (score.answer, score.extraction, score.value) == (answer, extraction, value)


def test_a_long_math_answer_is_kept_whole_where_the_reason_shortens_it():
    long = "+".join(f"x_{{{i}}}" for i in range(40))
    score = verify_math(f"\\boxed{{{long}}}", "1")
    assert score.answer == long and score.answer not in score.reason


def test_multiple_choice_records_the_letter_and_the_rule_that_found_it():
    score = score_choice("Let me think.\nAnswer: C", "B", ["a", "b", "c", "d"])
    assert (score.answer, score.value, score.extraction) == ("C", 0.0, "answer statement")
    assert score_choice("no idea", "B", ["a", "b", "c", "d"]).answer is None


def test_reasoning_gym_and_custom_verifiers_record_their_answer(tmp_path):
    gym = build_gym_task("basic_arithmetic", TaskOptions(limit=1))
    problem = gym.load()[0]
    score = gym.score(f"Working...\n<answer>{problem.answer}</answer>", problem)
    assert (score.answer, score.extraction, score.value) == (problem.answer, "<answer> tag", 1.0)
    data = tmp_path / "d.jsonl"
    data.write_text('{"q": "Say hi", "a": "h.i"}\n')
    regex = build_custom_task(f"{data}?prompt=q&answer=a&verifier=regex", TaskOptions())
    score = regex.score("oh hai there", regex.load()[0])
    assert (score.answer, score.extraction) == ("hai", "regex search")
    exact = build_custom_task(f"{data}?prompt=q&answer=a&verifier=exact", TaskOptions())
    score = exact.score("Answer: h.i", exact.load()[0])
    assert (score.answer, score.value) == ("h.i", 1.0) and score.extraction
