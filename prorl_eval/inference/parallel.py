"""Data parallelism: N engines in N worker processes behind the one `Generator` interface.

`DataParallelGenerator` starts `data_parallel_size` processes; each builds its own backend
(`hf` or `vllm`) with `CUDA_VISIBLE_DEVICES` set to its slice of the visible GPUs
(`tensor_parallel_size` GPUs each, so TP x DP must fit), or on a CPU machine with its share of the
cores. A `generate` call
splits its requests into contiguous shards of about equal sample counts, one per worker, and returns
the completions in request order. Each request carries its own seed, so for vLLM the completions do
not depend on how requests were split; the Hugging Face backend seeds per packed batch, so its
sampled completions match a single process when shards hold whole batches (greedy always does).
For a backend that orders work by prompt length (`hf`), `prompt_lengths` asks the first worker,
so a caller sorts its work the same way with one worker or several.

Workers are spawned (never forked: CUDA and vLLM must start in a fresh interpreter), ignore Ctrl-C
(the parent decides), and a worker that dies is noticed at once through its process sentinel, so a
crash becomes an error naming the worker and its GPUs rather than a hang.

Example:
    >>> gen = DataParallelGenerator("vllm", "/models/x", data_parallel_size=4,
    ...                             options={"tensor_parallel_size": 2})   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import traceback
from collections.abc import Iterator
from multiprocessing.connection import Connection, wait
from typing import Any

from prorl_eval.errors import UserError
from prorl_eval.inference.base import Completion, GenerationRequest, SamplingConfig


class WorkerCrashed(RuntimeError):
    """A data-parallel worker died or failed; the other workers have been stopped."""


def visible_gpus() -> list[str]:
    """The GPU ids this process may use: CUDA_VISIBLE_DEVICES if set, else all devices."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [gpu.strip() for gpu in listed.split(",") if gpu.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def gpu_slices(gpus: list[str], tensor_parallel_size: int, data_parallel_size: int) -> list[str]:
    """CUDA_VISIBLE_DEVICES for each worker; UserError when TP x DP GPUs are not there."""
    need = tensor_parallel_size * data_parallel_size
    if need > len(gpus):
        raise UserError(
            f"--tensor-parallel-size {tensor_parallel_size} x --data-parallel-size "
            f"{data_parallel_size} needs {need} GPUs but {len(gpus)} are visible; lower one of "
            "them or set CUDA_VISIBLE_DEVICES."
        )
    tp = tensor_parallel_size
    return [",".join(gpus[i * tp : (i + 1) * tp]) for i in range(data_parallel_size)]


def split_requests(requests: list[GenerationRequest], parts: int) -> list[tuple[int, int]]:
    """Contiguous [start, end) shards of `requests` with about equal numbers of samples."""
    total = sum(r.n for r in requests)
    bounds, start, seen = [], 0, 0
    for part in range(1, parts):
        target = total * part / parts
        end = start
        while end < len(requests) and seen + requests[end].n / 2 < target:
            seen += requests[end].n
            end += 1
        bounds.append((start, end))
        start = end
    bounds.append((start, len(requests)))
    return bounds


@contextlib.contextmanager
def _environ(changes: dict[str, str]) -> Iterator[None]:
    """Set environment variables while a child is spawned (it copies the parent's environment)."""
    saved = {key: os.environ.get(key) for key in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _describe(exc: BaseException) -> tuple[bool, str, str]:
    return isinstance(exc, UserError), str(exc), traceback.format_exc()


def _worker_main(
    conn: Connection,
    backend: str,
    model_path: str,
    revision: str | None,
    options: dict[str, Any],
    threads: int | None,
) -> None:
    """A worker: build the backend, then answer ("generate", requests, sampling) and
    ("prompt_lengths", requests, sampling) until "close"."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if threads:
        import torch

        torch.set_num_threads(threads)
    from prorl_eval.inference import make_generator

    try:
        generator = make_generator(backend, model_path, revision=revision, **options)
    except BaseException as exc:
        conn.send(("error", *_describe(exc)))
        return
    conn.send(("ready", (generator.backend, hasattr(generator, "prompt_lengths"))))
    try:
        while True:
            try:
                message = conn.recv()
            except EOFError:
                break
            if message[0] == "close":
                break
            try:
                conn.send(("ok", getattr(generator, message[0])(message[1], message[2])))
            except Exception as exc:
                conn.send(("error", *_describe(exc)))
    finally:
        generator.close()


class DataParallelGenerator:
    """`data_parallel_size` engines in worker processes; see the module docstring."""

    def __init__(
        self,
        backend: str,
        model_path: str,
        *,
        data_parallel_size: int,
        revision: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        if data_parallel_size < 1:
            raise UserError(f"--data-parallel-size must be at least 1 (got {data_parallel_size}).")
        options = dict(options or {})
        tensor_parallel_size = int(options.get("tensor_parallel_size", 1))
        gpus = visible_gpus()
        environments: list[dict[str, str]]
        if gpus:
            slices = gpu_slices(gpus, tensor_parallel_size, data_parallel_size)
            environments = [{"CUDA_VISIBLE_DEVICES": s} for s in slices]
            threads = None
        else:
            environments = [{} for _ in range(data_parallel_size)]
            threads = max(1, (os.cpu_count() or 1) // data_parallel_size)
        context = mp.get_context("spawn")
        self.backend = backend
        self.devices = [env.get("CUDA_VISIBLE_DEVICES", "cpu") for env in environments]
        self._workers: list[tuple[Any, Connection]] = []
        self._busy = False
        try:
            for env in environments:
                parent_end, child_end = context.Pipe()
                process = context.Process(
                    target=_worker_main,
                    args=(child_end, backend, model_path, revision, options, threads),
                    daemon=False,  # vLLM starts processes of its own, which daemons may not
                )
                with _environ(env):
                    process.start()
                child_end.close()
                self._workers.append((process, parent_end))
            self._busy = True
            ready = self._collect(list(range(len(self._workers))), "starting")
            self._busy = False
            self.backend, measures_prompts = ready[0]
            if measures_prompts:
                self.prompt_lengths = self._prompt_lengths
        except BaseException:
            self.close()
            raise

    @property
    def pids(self) -> list[int]:
        """The worker process ids, in worker order (empty once closed)."""
        return [process.pid for process, _ in self._workers]

    def generate(
        self, requests: list[GenerationRequest], sampling: SamplingConfig
    ) -> list[list[Completion]]:
        if not self._workers:
            raise RuntimeError("this generator is closed")
        shards = split_requests(requests, len(self._workers))
        work = {i: requests[start:end] for i, (start, end) in enumerate(shards) if end > start}
        outputs = self._ask("generate", work, sampling, "generating")
        return [completions for shard in outputs for completions in shard]

    def _prompt_lengths(
        self, requests: list[GenerationRequest], sampling: SamplingConfig
    ) -> list[int]:
        """Each request's prompt length in tokens, as the first worker's backend counts them
        (every worker loads the same tokenizer); set as `prompt_lengths` for backends that
        have it, so `length_order` sorts data-parallel work as it sorts one process's."""
        (lengths,) = self._ask("prompt_lengths", {0: requests}, sampling, "measuring prompts")
        return lengths

    def _ask(
        self,
        method: str,
        work: dict[int, list[GenerationRequest]],
        sampling: SamplingConfig,
        doing: str,
    ) -> list[Any]:
        """Call `method(requests, sampling)` in each worker of `work` (worker index -> its
        requests) and return the replies in worker order; any failure closes every worker."""
        if not self._workers:
            raise RuntimeError("this generator is closed")
        self._busy = True
        try:
            for index, shard in work.items():
                try:
                    self._workers[index][1].send((method, shard, sampling))
                except OSError:
                    self._died(index, doing)
            replies = self._collect(list(work), doing)
        except BaseException:
            self.close()
            raise
        self._busy = False
        return replies

    def _collect(self, indices: list[int], doing: str) -> list[Any]:
        """Wait for one reply from each worker in `indices`; raise as soon as any fails or dies."""
        replies: dict[int, Any] = {}
        pending = set(indices)
        while pending:
            by_handle: dict[Any, int] = {}
            for index in pending:
                process, conn = self._workers[index]
                by_handle[conn] = index
                by_handle[process.sentinel] = index
            for handle in wait(list(by_handle)):
                index = by_handle[handle]
                if index not in pending:
                    continue
                conn = self._workers[index][1]
                if not conn.poll():  # the process ended without a reply
                    self._died(index, doing)
                try:
                    reply = conn.recv()
                except (EOFError, OSError):
                    self._died(index, doing)
                if reply[0] == "error":
                    self._failed(index, doing, reply)
                replies[index] = reply[1]
                pending.discard(index)
        return [replies[i] for i in indices]

    def _name(self, index: int) -> str:
        where = self.devices[index]
        device = "on the CPU" if where == "cpu" else f"with CUDA_VISIBLE_DEVICES={where}"
        return f"data-parallel worker {index + 1} of {len(self._workers)} ({device})"

    def _died(self, index: int, doing: str) -> None:
        process = self._workers[index][0]
        process.join(timeout=5)
        code = process.exitcode
        killed = code is not None and code < 0
        how = f"was killed by signal {-code}" if killed else f"exited with code {code}"
        raise WorkerCrashed(
            f"{self._name(index)} {how} while {doing}; its log is above (out of memory?). The "
            "other workers were stopped; rows written so far are kept, re-run to resume."
        )

    def _failed(self, index: int, doing: str, reply: tuple) -> None:
        _, is_user_error, message, details = reply
        if is_user_error:
            raise UserError(message)
        raise WorkerCrashed(f"{self._name(index)} failed while {doing}: {message}\n{details}")

    def close(self) -> None:
        """Ask every worker to stop, then terminate any that do not within a few seconds."""
        workers, self._workers = self._workers, []
        # A worker still busy with an abandoned call (Ctrl-C, a failed peer) is not waited for.
        patience = 1 if self._busy else 30
        for _, conn in workers:
            with contextlib.suppress(OSError, ValueError):
                conn.send(("close",))
        for process, conn in workers:
            process.join(timeout=patience)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()
            conn.close()
