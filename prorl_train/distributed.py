"""Several trainer processes (data parallelism): process-group setup, collectives, sharded rollouts.

A run is multi-process when a launcher set `WORLD_SIZE > 1` in the environment (torchrun, the
`deepspeed` launcher, or any launcher that sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR /
MASTER_PORT). Every process then holds the whole policy (ZeRO stages 0-2) or a shard of it (stage
3) and the *same* step data: rollouts are generated in shards and gathered, so dynamic sampling,
advantages and mini-batch shuffles are computed identically on every rank; only the update's
micro-batches and the old/reference log-prob passes are split across ranks.

The process group uses NCCL when the process owns a GPU (`cuda:LOCAL_RANK`) and gloo on CPU.
Without a launcher (or with WORLD_SIZE=1) nothing is initialised and every helper here is a cheap
no-op, so a single-process run needs no `torch.distributed` at all.

Sharded rollouts (`ShardedEngine`): each `sample` call's prompts are cut into fixed chunks of
`chunk_prompts` prompts whose sampling seeds derive from the chunk index, never from the rank;
rank r generates chunks r, r + W, r + 2W, ... and the chunks are gathered back in order. The
single-process run uses the same chunks, so 1 and W processes produce the same rollouts.

Sharded scoring (`ShardedScorer`): rank r scores jobs r, r + W, r + 2W, ... and the scores are
gathered back in order, so every rank holds the same rewards while each verifier (a sandboxed
program run, say) runs once per job rather than once per rank on the node's shared CPUs; a
verdict that depends on timing (a test near its time limit) cannot differ between ranks either.

Example:
    >>> device = init_distributed("auto")  # doctest: +SKIP
    >>> gathered = all_gather_object({"rank": rank()})  # doctest: +SKIP
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from typing import Any, TypeVar

from prorl_eval.errors import UserError
from prorl_eval.seeds import derive_seed

T = TypeVar("T")


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise UserError(f"environment variable {name}={value!r} is not an integer.") from None


def env_world_size() -> int:
    """The number of processes a launcher asked for (1 without a launcher)."""
    return _env_int("WORLD_SIZE", 1)


def is_initialized() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's global rank (0 in a single-process run)."""
    import torch.distributed as dist

    return dist.get_rank() if is_initialized() else 0


def world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if is_initialized() else 1


def is_main() -> bool:
    """True on the process that writes files (rank 0)."""
    return rank() == 0


def init_distributed(device: str, one_process_group: bool = False) -> str:
    """Join the launcher's process group (when WORLD_SIZE > 1); returns this process's device.

    `device` is the model.device setting: `auto` gives `cuda:LOCAL_RANK` when CUDA is available,
    else `cpu`; `cpu` forces CPU (gloo); `cuda`/`cuda:i` in a multi-process run means
    `cuda:LOCAL_RANK` (each process owns one GPU). A single process returns `device` unchanged
    and, with `one_process_group` (DeepSpeed needs a group), starts a group of one.
    """
    import torch
    import torch.distributed as dist

    world = env_world_size()
    if world <= 1:
        if one_process_group and not is_initialized():
            _start_group_of_one(device != "cpu" and torch.cuda.is_available())
        return device
    local_rank = _env_int("LOCAL_RANK", 0)
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"model.device={device} but CUDA is not available; use auto or cpu.")
    if use_cuda:
        if local_rank >= torch.cuda.device_count():
            raise UserError(
                f"LOCAL_RANK {local_rank} has no GPU ({torch.cuda.device_count()} visible); "
                "start at most one process per GPU."
            )
        torch.cuda.set_device(local_rank)
    for name in ("MASTER_ADDR", "MASTER_PORT", "RANK"):
        if name not in os.environ:
            raise UserError(
                f"WORLD_SIZE={world} but {name} is not set; launch with torchrun or deepspeed."
            )
    if not is_initialized():
        dist.init_process_group(
            backend="nccl" if use_cuda else "gloo",
            timeout=datetime.timedelta(minutes=_env_int("PRORL_DIST_TIMEOUT_MIN", 60)),
            device_id=torch.device("cuda", local_rank) if use_cuda else None,
        )
    return f"cuda:{local_rank}" if use_cuda else "cpu"


def _start_group_of_one(use_cuda: bool) -> None:
    """A one-process group on a free local port (or the launcher's MASTER_ADDR/PORT)."""
    import socket

    import torch.distributed as dist

    address = os.environ.get("MASTER_ADDR", "127.0.0.1")
    port = os.environ.get("MASTER_PORT", "")
    if not port:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = str(sock.getsockname()[1])
    for name, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1")):
        os.environ.setdefault(name, value)  # DeepSpeed reads these even for one process
    dist.init_process_group(
        backend="nccl" if use_cuda else "gloo",
        init_method=f"tcp://{address}:{port}",
        rank=0,
        world_size=1,
    )


def barrier() -> None:
    """Wait for every process (a no-op in a single-process run)."""
    import torch.distributed as dist

    if is_initialized():
        dist.barrier()


def all_gather_object(value: Any) -> list[Any]:
    """Every rank's `value` (picklable), in rank order; [value] in a single-process run."""
    import torch.distributed as dist

    if not is_initialized():
        return [value]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, value)
    return out


def broadcast_object(value: Any, src: int = 0) -> Any:
    """Rank `src`'s `value` on every rank."""
    import torch.distributed as dist

    if not is_initialized():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_reduce_sum_(tensor: Any) -> Any:
    """Sum `tensor` in place over all ranks (a no-op in a single-process run)."""
    import torch.distributed as dist

    if is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def destroy() -> None:
    import torch.distributed as dist

    if is_initialized():
        dist.destroy_process_group()


def round_robin(items: list[Any]) -> list[tuple[int, Any] | None]:
    """This rank's share of `items` as (index, item), padded with None so every rank gets the
    same number of entries (ranks must run the same number of collective forward/backward calls).
    """
    world, me = world_size(), rank()
    per_rank = -(-len(items) // world)
    mine: list[tuple[int, Any] | None] = [(k, items[k]) for k in range(me, len(items), world)]
    return mine + [None] * (per_rank - len(mine))


def gather_shards(mine: Mapping[int, T], count: int) -> list[T]:
    """Every rank's share of a list, gathered back into one list in index order, on every rank.

    `mine` maps the indices this rank computed (its `round_robin` share, say) to their values;
    together the ranks must hold each of 0..count-1 exactly once. A single-process run holds them
    all and gets them back in order. This is the one place a sharded computation is merged, so
    the merged order (hence float sums taken over it) never depends on which rank did what.
    """
    merged: dict[int, T] = {}
    for part in all_gather_object(dict(mine)):
        overlap = merged.keys() & part.keys()
        if overlap:
            raise ValueError(f"indices {sorted(overlap)} were computed by two ranks")
        merged.update(part)
    if merged.keys() != set(range(count)):
        wrong = sorted(merged.keys() ^ set(range(count)))
        raise ValueError(f"the gathered shards do not cover 0..{count - 1}: {wrong}")
    return [merged[k] for k in range(count)]


class ShardedEngine:
    """A rollout engine whose `sample` calls are split into rank-independent chunks (see the module
    docstring); `before_update` and `sync_weights` go to the wrapped engine on every rank."""

    def __init__(self, engine: Any, chunk_prompts: int) -> None:
        self.engine = engine
        self.chunk_prompts = max(1, chunk_prompts)

    def sample(self, prompts: list[list[int]], n: int, seed: int, sampling: Any) -> list[list[Any]]:
        size = self.chunk_prompts
        chunks = [prompts[i : i + size] for i in range(0, len(prompts), size)]
        mine = {
            k: self.engine.sample(chunks[k], n, derive_seed(seed, "chunk", k), sampling)
            for k in range(rank(), len(chunks), world_size())
        }
        return [group for part in gather_shards(mine, len(chunks)) for group in part]

    def before_update(self) -> None:
        self.engine.before_update()

    def sync_weights(self, policy: Any) -> None:
        self.engine.sync_weights(policy)

    def __getattr__(self, name: str) -> Any:  # anything else the wrapped engine offers
        if name == "engine":
            raise AttributeError(name)
        return getattr(self.engine, name)


class ShardedScorer:
    """A scorer whose `score` calls are split over the ranks (see the module docstring); the
    single-process run scores everything itself."""

    def __init__(self, scorer: Any) -> None:
        self.scorer = scorer

    def score(self, jobs: list[Any]) -> list[Any]:
        world, me = world_size(), rank()
        if world == 1:
            return self.scorer.score(jobs)
        scores = self.scorer.score(jobs[me::world])
        return gather_shards(dict(zip(range(me, len(jobs), world), scores, strict=True)), len(jobs))

    def close(self) -> None:
        self.scorer.close()
