"""The sample schema: reading, validation, torn-tail repair, and the append-only writer."""

from __future__ import annotations

import json

import pytest

from prorl_eval.errors import UserError
from prorl_eval.schema import SampleRow, SampleWriter, read_samples, repair_torn_tail


def _write(path, lines):
    path.write_text("".join(line + "\n" for line in lines))


def test_row_derives_correct_from_threshold():
    assert SampleRow("t", "0", 0, score=1.0).correct is True
    assert SampleRow("t", "0", 0, score=0.7).correct is False
    assert SampleRow("t", "0", 0, score=0.7, threshold=0.5).correct is True


def test_minimal_rows_are_accepted_and_normalised(tmp_path):
    path = tmp_path / "s.jsonl"
    _write(
        path,
        [
            json.dumps({"task": "a", "problem_id": 7, "sample_idx": 0, "score": 1}),
            "",
            json.dumps({"task": "a", "problem_id": 7, "sample_idx": 1, "score": 0.25}),
            json.dumps(
                {"task": "a", "problem_id": 8, "sample_idx": 0, "score": 0.25, "correct": True}
            ),
        ],
    )
    rows = read_samples(path)
    assert [r["problem_id"] for r in rows] == ["7", "7", "8"]
    assert [r["correct"] for r in rows] == [True, False, True]
    assert all(isinstance(r["score"], float) for r in rows)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "s.jsonl:2: malformed JSON"),
        ('{"task": "a", "problem_id": 1, "score": 1}', "s.jsonl:2: missing field.s. sample_idx"),
        ('{"task": "a", "problem_id": 1, "sample_idx": 1, "score": 1.5}', "outside [0, 1]"),
        ('{"task": "a", "problem_id": 1, "sample_idx": -1, "score": 1}', "non-negative"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_bad_lines_are_named(tmp_path, line, message):
    path = tmp_path / "s.jsonl"
    _write(path, ['{"task": "a", "problem_id": 1, "sample_idx": 0, "score": 1}', line])
    with pytest.raises(UserError, match=message.replace("[", r"\[")):
        read_samples(path)


def test_duplicate_keys_are_refused_with_their_lines(tmp_path):
    path = tmp_path / "s.jsonl"
    row = '{"task": "a", "problem_id": 1, "sample_idx": 0, "score": 1}'
    _write(path, [row, '{"task": "a", "problem_id": 1, "sample_idx": 1, "score": 0}', row])
    with pytest.raises(UserError, match="lines 1 and 3"):
        read_samples(path)
    assert len(read_samples(path, allow_duplicates=True)) == 3


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        read_samples(tmp_path / "nope.jsonl")


def test_repair_drops_only_a_half_written_last_row(tmp_path):
    path = tmp_path / "s.jsonl"
    good = '{"task": "a", "problem_id": 1, "sample_idx": 0, "score": 1}\n'
    path.write_text(good + '{"task": "a", "problem_id": 1, "sam')
    assert repair_torn_tail(path) is True
    assert path.read_text() == good
    assert repair_torn_tail(path) is False
    assert path.read_text() == good


def test_repair_keeps_a_complete_row_that_lost_its_newline(tmp_path):
    path = tmp_path / "s.jsonl"
    good = '{"task": "a", "problem_id": 1, "sample_idx": 0, "score": 1}'
    path.write_text(good)
    assert repair_torn_tail(path) is False
    assert path.read_text() == good + "\n"


def test_writer_appends_whole_lines(tmp_path):
    path = tmp_path / "s.jsonl"
    with SampleWriter(path) as writer:
        writer.write([SampleRow("t", "0", 0, score=1.0, response="line1\nline2")])
    with SampleWriter(path) as writer:
        writer.write([{"task": "t", "problem_id": "0", "sample_idx": 1, "score": 0.0}])
    rows = read_samples(path)
    assert [r["sample_idx"] for r in rows] == [0, 1]
    assert rows[0]["response"] == "line1\nline2"
    assert path.read_text().count("\n") == 2
