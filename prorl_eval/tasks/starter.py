"""Starter sets: three small question sets the embedded 135M model partly knows.

`starter:capitals`, `starter:sums` and `starter:products` are the held-out evaluation splits (16
questions each) of sets shipped with prorl (`tasks/starter_data/`, written by
`scripts/make_starter_data.py`); `starter:<set>-train` are the training splits, with no question
in common. They are ordinary custom tasks (`prorl_eval.tasks.custom`) under short, stable names, so
run folders made on different machines name them alike:

| set | questions (train / eval) | verifier | domain | the base model |
|---|---|---|---|---|
| capitals | "What is the capital city of France?" (44 / 16) | contains | knowledge | mostly right |
| sums | "What is 7 + 12?" (384 / 16) | number (math-verify, a number) | math | sometimes right |
| products | "What is 7 times 8?" (105 / 16) | exact, "Answer: <answer>" | math | rarely right |

The README's first command evaluates them (the suite `starter`), and the `prorl-mini` training
recipe trains on the `-train` splits and evaluates on the others.

Example:
    >>> sorted(STARTER_SETS)
    ['capitals', 'products', 'sums']
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from prorl_eval.tasks.entries import Family, TaskEntry
from prorl_eval.tasks.options import TaskOptions

DATA = Path(__file__).parent / "starter_data"
EVAL_SIZE = 16  # questions in each held-out split
STARTER_SETS: dict[str, dict[str, str]] = {
    "capitals": {"options": "verifier=contains", "domain": "knowledge", "verifier": "contains"},
    # number, not math: under RL the embedded model learned to restate "11 + 17" as its answer,
    # which math-verify credits as equal to 28 (docs/miniature.md)
    "sums": {
        "options": "verifier=number&instruction=none",
        "domain": "math",
        "verifier": "number (math-verify, the answer a number)",
    },
    "products": {"options": "verifier=exact", "domain": "math", "verifier": "exact (Answer: ...)"},
}


def starter_names() -> list[str]:
    """Every starter task name: the evaluation splits, then the training splits."""
    return [*(f"starter:{s}" for s in STARTER_SETS), *(f"starter:{s}-train" for s in STARTER_SETS)]


def build_starter_task(argument: str, options: TaskOptions) -> Any:
    """Registry builder for `starter:<set>` / `starter:<set>-train`."""
    from prorl_eval.errors import UserError
    from prorl_eval.tasks.custom import CustomTask, parse_custom_argument

    name, dash, split = argument.partition("-")
    if name not in STARTER_SETS or (dash and split != "train"):
        raise UserError(
            f"unknown starter task 'starter:{argument}'; choose one of "
            f"{', '.join(starter_names())}."
        )
    spec = STARTER_SETS[name]
    path = DATA / f"{name}_{'train' if dash else 'eval'}.jsonl"
    config = parse_custom_argument(
        f"{path}?prompt=question&answer=answer&id=id&{spec['options']}&domain={spec['domain']}",
        limit=options.limit,
    )
    task = CustomTask(f"starter:{argument}", config)
    task.source = f"prorl starter set ({path.name})"
    return task


def catalogue_entries() -> list[TaskEntry]:
    """Each starter set's held-out split, then its training split, as the registry lists them."""
    entries = []
    for name, spec in STARTER_SETS.items():
        for suffix, size in (("", str(EVAL_SIZE)), ("-train", "train split")):
            argument = f"{name}{suffix}"
            entries.append(
                TaskEntry(
                    name=f"starter:{argument}",
                    domain=spec["domain"],
                    verifier=spec["verifier"],
                    source="prorl starter set (bundled)",
                    size=size,
                    build=partial(build_starter_task, argument),
                )
            )
    return entries


FAMILY = Family(
    prefix="starter",
    domain="knowledge / math",
    verifier="contains | math | exact",
    usage="starter:<capitals|sums|products>[-train] (held-out split; -train: the training split)",
    build=build_starter_task,
)
