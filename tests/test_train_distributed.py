"""Merging sharded work in one process: `gather_shards` without a process group and in a group of
one, with `round_robin` shares, and its refusals. The two-process side is in
test_train_deepspeed.py (`gathered_shards` in its torchrun worker)."""

from __future__ import annotations

import pytest

from prorl_train import distributed as dist


@pytest.fixture(params=["no group", "group of one"])
def one_process_world(request):
    """A single-process run as the trainer has it: no process group, or DeepSpeed's group of 1."""
    if request.param == "group of one":
        dist.init_distributed("cpu", one_process_group=True)
        assert dist.is_initialized()
    try:
        yield request.param
    finally:
        dist.destroy()
    assert not dist.is_initialized()


def test_shards_come_back_in_index_order(one_process_world):
    shards = {2: "c", 0: "a", 3: "d", 1: "b"}  # computed in any order
    assert dist.gather_shards(shards, 4) == ["a", "b", "c", "d"]
    assert dist.gather_shards({}, 0) == []


def test_a_round_robin_share_merges_back_to_the_items(one_process_world):
    items = [[i, i * i] for i in range(7)]
    mine = {k: [x * 10 for x in item] for k, item in filter(None, dist.round_robin(items))}
    assert dist.gather_shards(mine, len(items)) == [[10 * i, 10 * i * i] for i in range(7)]


@pytest.mark.parametrize(
    ("shards", "count", "fragment"),
    [
        ({0: "a", 2: "c"}, 3, r"do not cover 0\.\.2: \[1\]"),
        ({0: "a", 1: "b", 5: "x"}, 2, r"do not cover 0\.\.1: \[5\]"),
    ],
)
def test_missing_or_stray_indices_are_refused(one_process_world, shards, count, fragment):
    with pytest.raises(ValueError, match=fragment):
        dist.gather_shards(shards, count)
