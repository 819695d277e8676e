"""Metrics rows, TensorBoard events (read back with TensorBoard's own reader), and the plot."""

from __future__ import annotations

import json
import math

import pytest

from prorl_eval.analysis.dynamics import panel_keys, reset_steps, series
from prorl_eval.errors import UserError
from prorl_train.metrics import MetricsLogger, read_metrics, rollout_metrics
from prorl_train.plot import plot_run
from prorl_train.rollout import Rollouts


def test_rollout_metrics_against_brute_force():
    r = Rollouts()
    data = [
        ("math", 1.0, True, [1, 2, 3], False),
        ("math", 0.0, False, [1], False),
        ("logic", 0.5, False, [1, 2, 3, 4, 5, 6], True),
        ("logic", 1.0, True, [9, 9], False),
        ("code", 0.25, False, [7, 7, 7, 7], True),
    ]
    for domain, reward, correct, ids, truncated in data:
        r.domains.append(domain)
        r.rewards.append(reward)
        r.correct.append(correct)
        r.response_ids.append(ids)
        r.truncated.append(truncated)
    out = rollout_metrics(r)
    assert out["reward/mean"] == pytest.approx(2.75 / 5)
    assert out["reward/accuracy"] == pytest.approx(2 / 5)
    assert out["reward/math"] == pytest.approx(0.5)
    assert out["reward/logic"] == pytest.approx(0.75)
    assert out["reward/code"] == pytest.approx(0.25)
    assert out["rollout/response_len_mean"] == pytest.approx(16 / 5)
    assert out["rollout/response_len_max"] == 6
    assert out["rollout/truncated_share"] == pytest.approx(2 / 5)
    assert rollout_metrics(Rollouts()) == {}


def test_logger_rows_and_torn_lines(tmp_path):
    logger = MetricsLogger(tmp_path, tensorboard=False)
    logger.log(1, {"a": 0.5, "b": float("nan"), "flag": True, "note": "x"})
    logger.log(2, {"a": 1.0 / 3})
    with open(tmp_path / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 3, "a"')  # a crash mid-write
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert rows == [
        {"step": 1, "a": 0.5, "b": None, "flag": 1, "note": "x"},
        {"step": 2, "a": round(1 / 3, 8)},
    ]
    assert read_metrics(tmp_path / "missing.jsonl") == []


def test_tensorboard_events_hold_the_rows(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = MetricsLogger(tmp_path, tensorboard=True)
    assert logger.note == ""
    rows = [logger.log(s, {"reward/mean": s / 10, "reset/triggers": "file"}) for s in (1, 2, 3)]
    logger.close()
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert events.Tags()["scalars"] == ["reward/mean"]  # strings are not scalars
    got = [(e.step, e.value) for e in events.Scalars("reward/mean")]
    want = [(row["step"], row["reward/mean"]) for row in rows]
    assert [s for s, _ in got] == [s for s, _ in want]
    assert all(math.isclose(a, b, rel_tol=1e-6) for (_, a), (_, b) in zip(got, want, strict=True))


def write_run(tmp_path, rows):
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


ROWS = [
    {"step": 1, "reward/mean": 0.1, "reward/math": 0.2, "reward/accuracy": 0.0, "x/y/z": 1},
    {"step": 2, "reward/mean": 0.3, "val/pass@1": 0.4, "reset/event": 1},
    {"step": 3, "reward/mean": 0.5, "reward/logic": 0.6, "actor/entropy": 1.2},
    {"step": 4, "reward/mean": None, "reset/event": 1, "reset/triggers": "file"},
]


def test_plot_helpers():
    assert series(ROWS, "reward/mean") == ([1, 2, 3], [0.1, 0.3, 0.5])
    assert panel_keys(ROWS, ["reward/mean", "reward/*"]) == [
        "reward/mean",
        "reward/logic",
        "reward/math",
    ]
    assert panel_keys(ROWS, ["actor/kl_ref"]) == []
    assert reset_steps(ROWS) == [2, 4]


def test_plot_run_writes_a_png(tmp_path):
    write_run(tmp_path, ROWS)
    path = plot_run(tmp_path)
    assert path == tmp_path / "dynamics.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    other = plot_run(tmp_path, tmp_path / "other.png")
    assert other.stat().st_size > 1000


def test_plot_of_an_empty_run_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no metrics"):
        plot_run(tmp_path)
