"""How full dynamic sampling keeps a batch: the old refill rule against `batch_filling.BatchFiller`.

Simulated steps, no model: each drawn prompt's group is dropped with probability `--drop` (all
correct) or kept (mixed rewards), independently, from one seeded stream. Per rule and setting the
script reports the mean groups kept per step, the share of steps whose batch was full, and the
groups generated per step (the generation cost). Both rules get the same round limit
(`--extra-rounds`, the trainer's `rollout.max_extra_rounds`).

* **old**: each round draws only the missing number of prompts (what the trainer did before).
* **filler**: the trainer's `BatchFiller` at several `rollout.oversample` values (round 0 draws
  batch x oversample; refills divide the missing groups by the share kept so far).

Run: ``.venv/bin/python benchmarks/bench_batch_filling.py [--batch 256] [--steps 300]
[--drop 0.5 0.7] [--extra-rounds 3] [--json PATH]`` (about 2 minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from prorl_train.batch_filling import BatchFiller
from prorl_train.config import RolloutConfig
from prorl_train.rollout import Rollouts


def scored_round(first_id: int, count: int, drop: float, rng: random.Random) -> Rollouts:
    """`count` groups of two responses: all correct with probability `drop`, else mixed."""
    r = Rollouts()
    for k in range(count):
        rewards = [1.0, 1.0] if rng.random() < drop else [0.0, 1.0]
        for reward in rewards:
            for name, value in (
                ("prompt_ids", [1]),
                ("response_ids", [2]),
                ("rewards", reward),
                ("correct", reward >= 1.0),
                ("truncated", False),
                ("loss_mask", True),
                ("group_ids", first_id + k),
                ("tasks", "t"),
                ("domains", "d"),
                ("texts", ""),
                ("rollout_logprobs", None),
            ):
                getattr(r, name).append(value)
    return r


def simulate(rule: str, oversample: float, drop: float, args: argparse.Namespace) -> dict:
    """Mean kept groups, share of full batches and mean generated groups over `args.steps`."""
    rng = random.Random(args.seed)
    kept, generated = [], []
    for _ in range(args.steps):
        cfg = RolloutConfig(oversample=oversample, max_extra_rounds=args.extra_rounds)
        filler = BatchFiller(args.batch, cfg)
        next_id = 0
        while True:
            if rule == "old":
                count = filler.missing if filler.rounds <= args.extra_rounds else 0
            else:
                count = filler.next_draw()
            if count <= 0:
                break
            filler.add(scored_round(next_id, count, drop, rng), {"t": False})
            next_id += count
        kept.append(filler.kept.num_groups)
        generated.append(filler.counts["generated"])
    return {
        "rule": rule,
        "oversample": oversample,
        "drop": drop,
        "kept_mean": statistics.mean(kept),
        "full_share": sum(k == args.batch for k in kept) / args.steps,
        "generated_mean": statistics.mean(generated),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--drop", type=float, nargs="+", default=[0.5, 0.7])
    parser.add_argument("--oversample", type=float, nargs="+", default=[1.0, 1.5, 2.0])
    parser.add_argument("--extra-rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    for drop in args.drop:
        rows.append(simulate("old", 1.0, drop, args))
        rows.extend(simulate("filler", o, drop, args) for o in args.oversample)
    print(f"batch {args.batch}, {args.steps} steps, up to {args.extra_rounds} refill rounds")
    print("| dropped | rule | oversample | kept / step | full batches | generated / step |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        over = "-" if row["rule"] == "old" else f"{row['oversample']:g}"
        print(
            f"| {row['drop']:.0%} | {row['rule']} | {over} | {row['kept_mean']:.1f} | "
            f"{row['full_share']:.1%} | {row['generated_mean']:.0f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
