"""The task registry: names, suites, families, and suites over data that is not here."""

from __future__ import annotations

import pytest

from prorl_eval.errors import UserError
from prorl_eval.tasks.registry import (
    TaskOptions,
    build_task,
    catalogue,
    expand_names,
    resolve_available_tasks,
    suites,
)


def test_stable_names_and_suites():
    names = {entry.name for entry in catalogue()}
    for name in (
        "aime24",
        "aime25",
        "amc23",
        "math500",
        "minerva",
        "olympiadbench",
        "humaneval",
        "humaneval_plus",
        "mbpp_plus",
        "gpqa_diamond",
        "ifeval",
        "gym:basic_arithmetic",
    ):
        assert name in names
    table = suites()
    for suite in ("math", "code", "stem", "ifeval", "logic", "prorl-paper"):
        assert table[suite]
    assert len(table["logic"]) == 105
    assert set(table["math"]) | set(table["code"]) | {"gpqa_diamond", "ifeval"} <= set(
        table["prorl-paper"]
    )
    assert expand_names("math,aime24") == list(table["math"])


def test_unknown_names_suggest_close_ones():
    with pytest.raises(UserError, match="Did you mean math500"):
        build_task("math5000", TaskOptions())


def test_suite_members_without_data_are_skipped_but_named_tasks_must_load(tmp_path):
    tasks, skipped = resolve_available_tasks("code", TaskOptions(data_dir=str(tmp_path), limit=2))
    assert [t.name for t in tasks] == ["humaneval"]
    assert set(skipped) == {"humaneval_plus", "mbpp_plus"}
    assert "no offline copy" in skipped["mbpp_plus"]
    with pytest.raises(UserError, match="no offline copy"):
        resolve_available_tasks("humaneval_plus", TaskOptions(data_dir=str(tmp_path)))
    with pytest.raises(UserError, match=r"data directory .* does not exist"):
        resolve_available_tasks("math", TaskOptions(data_dir=str(tmp_path / "missing")))
