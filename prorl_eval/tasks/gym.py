"""Reasoning Gym tasks: procedurally generated logic and arithmetic puzzles, scored continuously.

`gym:<dataset>` builds `limit` problems of a Reasoning Gym dataset with a fixed data seed (so base
and RL runs see the same puzzles), asks for the answer inside `<answer></answer>` tags, and scores
with the dataset's own `score_answer` (a value in [0, 1]; partial credit where the dataset
gives it). `gym:<dataset>?<field>=<value>&...` sets fields of the dataset's own config
(difficulty: `gym:basic_arithmetic?max_terms=2&max_digits=1`); values are read as YAML scalars or
lists, and the task's name lists them sorted, so one config has one name.

Problems are the same in every process: they are generated with Python's string-hash seed pinned
(`prorl_eval.determinism`; several reasoning-gym datasets iterate sets of strings while drawing)
and with the global `random` and numpy RNGs seeded per item (list_functions draws from the
unseeded global `random`). Without both, six datasets build different puzzles for the same
(seed, index) in each process, and list_functions even within one.

Five datasets (graph_color, propositional_logic, rubiks_cube, boxnet, rush_hour) have no single
answer: their scorer checks a response for validity, so their own `answer` (None) scores 0. For the
first three the example solution in the entry's metadata is the reference answer (it scores 1.0);
boxnet and rush_hour have none (`Problem.answer` is None) and are scored by validity alone.

Answer extraction, in order: the last `<answer>…</answer>` block, else the last `\\boxed{…}`, else
the last non-empty line of the response (skipping an unfinished numbered-list item such as a
trailing "3." after "2. …", `tasks.base.last_answer_line`); the reason says which one was used.

Example:
    >>> task = GymTask(GymConfig("basic_arithmetic", limit=5, seed=0))    # doctest: +SKIP
    >>> task.score("<answer>4</answer>", task.load()[0]).value  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from importlib import metadata
from typing import Any

from prorl_eval.determinism import call_with_fixed_hash_seed
from prorl_eval.errors import UserError
from prorl_eval.seeds import derive_seed
from prorl_eval.tasks.base import Problem, Score, Task, last_answer_line, strip_reasoning
from prorl_eval.tasks.entries import Family, TaskEntry
from prorl_eval.tasks.options import TaskOptions

DEFAULT_GYM_LIMIT = 50
GYM_SOURCE = "reasoning-gym (generated offline)"
GYM_VERIFIER = "reasoning-gym score_answer"
ANSWER_INSTRUCTION = (
    "Think step by step, then give only the final answer inside <answer></answer> tags, "
    "for example <answer>42</answer>."
)
# Bumped whenever `_extract` changes what it accepts, so a run folder never mixes two rules.
# v2: an unfinished numbered-list item ("3." after "2. ...") is no last-line answer; v3: nor is
# its bare number ("3" after "2. ...").
EXTRACTION_VERSION = "extract-v3"
_ANSWER = re.compile(r"<answer>\s?(.*?)\s?</answer>", flags=re.DOTALL)


# Datasets whose entries carry no single answer (`answer` is None): their `score_answer` checks a
# response for validity (a legal colouring, a solving move sequence, ...), so scoring model output
# works, but the entry's own answer scores 0. Three ship an example solution in their metadata,
# which we use as the reference answer; boxnet and rush_hour have none.
REFERENCE_IN_METADATA = {
    "graph_color": "possible_answer",
    "propositional_logic": "example_answer",
    "rubiks_cube": "example_correct_answer",
}
NO_REFERENCE_ANSWER = ("boxnet", "rush_hour")
# Needs a list of member datasets to be useful; mixes are offered as suites instead.
_EXCLUDED = ("composite",)


def gym_dataset_names() -> list[str]:
    """Every Reasoning Gym dataset usable as a task by name."""
    from reasoning_gym.factory import DATASETS

    return sorted(name for name in DATASETS if name not in _EXCLUDED)


def gym_categories() -> dict[str, list[str]]:
    """Reasoning Gym's own grouping of its datasets (arithmetic, algorithmic, games, ...)."""
    groups: dict[str, list[str]] = {}
    for name in gym_dataset_names():
        groups.setdefault(gym_category(name), []).append(name)
    return groups


def gym_category(dataset: str) -> str:
    """Reasoning Gym's category of one dataset (its module's package: arithmetic, games, ...)."""
    from reasoning_gym.factory import DATASETS

    return DATASETS[dataset][0].__module__.split(".")[1]


def reference_answer(dataset: str, entry: dict[str, Any]) -> str | None:
    """The answer to show as gold: the entry's own, else the example solution in its metadata."""
    if entry.get("answer") is not None:
        return str(entry["answer"])
    key = REFERENCE_IN_METADATA.get(dataset)
    if key is None or entry.get("metadata", {}).get(key) is None:
        return None
    value = entry["metadata"][key]
    return value if isinstance(value, str) else json.dumps(value)


GymParams = tuple[tuple[str, Any], ...]
# Config fields a task may not set: the data seed and the size come from --data-seed / --limit.
_RESERVED_FIELDS = ("seed", "size")


# Reasoning Gym builds item i of seed s from Random(s + i), so data seeds 0, 1 and 2 would give
# the same puzzles shifted by one or two places (198 of 200 shared): evaluation (seed 0),
# validation (1) and training (2) would see the same problems. Data seed s therefore becomes
# Reasoning Gym seed s * SEED_STRIDE; seed 0 stays 0, and seeds do not overlap below a million
# items. MAX_DATA_SEED keeps seed + index below 2**32, which numpy's legacy seeding needs.
SEED_STRIDE = 1_000_000
MAX_DATA_SEED = (2**32 - 1) // SEED_STRIDE - 1  # 4293: seed + index stays below 2**32


def reasoning_gym_seed(data_seed: int) -> int:
    """The seed handed to Reasoning Gym for a data seed (see SEED_STRIDE)."""
    return data_seed * SEED_STRIDE


@dataclass(frozen=True)
class GymConfig:
    """Which Reasoning Gym dataset, how many problems, the seed that generates them, and settings
    of the dataset's own config (`params`, sorted (field, value) pairs)."""

    dataset: str
    limit: int = DEFAULT_GYM_LIMIT
    seed: int = 0
    params: GymParams = ()

    def validate(self) -> None:
        names = gym_dataset_names()
        if self.dataset not in names:
            import difflib

            close = difflib.get_close_matches(self.dataset, names, n=3)
            hint = f" Did you mean {', '.join('gym:' + c for c in close)}?" if close else ""
            raise UserError(
                f"unknown Reasoning Gym dataset '{self.dataset}'.{hint} "
                "Run `prorl-eval tasks` to list them."
            )
        if self.limit <= 0:
            raise UserError(f"gym:{self.dataset} would have no problems: --limit must be > 0.")
        if not 0 <= self.seed <= MAX_DATA_SEED:
            raise UserError(
                f"gym:{self.dataset}: the data seed must be between 0 and {MAX_DATA_SEED} "
                f"(got {self.seed}); it is scaled by {SEED_STRIDE:,} for Reasoning Gym."
            )
        if self.limit > SEED_STRIDE:
            raise UserError(
                f"gym:{self.dataset}: at most {SEED_STRIDE:,} problems per data seed "
                f"(got --limit {self.limit}); beyond that seeds would share puzzles."
            )
        allowed = config_fields(self.dataset)
        unknown = [key for key, _ in self.params if key not in allowed]
        if unknown:
            raise UserError(
                f"gym:{self.dataset} has no setting '{unknown[0]}'; its settings are "
                f"{', '.join(allowed)} (seed and size come from --data-seed and --limit)."
            )

    @property
    def task_name(self) -> str:
        """`gym:<dataset>`, then `?field=value&...` in sorted order when settings are given."""
        if not self.params:
            return f"gym:{self.dataset}"
        query = "&".join(f"{key}={_format_value(value)}" for key, value in self.params)
        return f"gym:{self.dataset}?{query}"


def config_fields(dataset: str) -> list[str]:
    """The settings of a dataset's own config class that a task may set."""
    import dataclasses

    from reasoning_gym.factory import DATASETS

    config_class = DATASETS[dataset][1]
    return [f.name for f in dataclasses.fields(config_class) if f.name not in _RESERVED_FIELDS]


def parse_gym_argument(argument: str) -> tuple[str, GymParams]:
    """`basic_arithmetic?max_terms=2&operators=[+, -]` → (dataset, sorted settings).

    Values are YAML (`2`, `true`, `[+, -]`, `simple`); a list becomes a tuple. `&` separates
    settings and `=` ends a key, so neither may appear inside a value.
    """
    import yaml

    dataset, sep, query = argument.partition("?")
    params: dict[str, Any] = {}
    for part in query.split("&") if sep else ():
        key, eq, raw = part.partition("=")
        key = key.strip()
        if not key or not eq:
            raise UserError(
                f"gym:{argument}: settings are field=value pairs joined by '&', e.g. "
                "gym:basic_arithmetic?max_terms=2&max_digits=1."
            )
        if key in params:
            raise UserError(f"gym:{argument}: setting '{key}' is given twice.")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        params[key] = tuple(value) if isinstance(value, list) else value
    return dataset.strip(), tuple(sorted(params.items()))


def _format_value(value: Any) -> str:
    """A setting's value as the canonical name writes it (read back by `parse_gym_argument`)."""
    import yaml

    if isinstance(value, str):
        try:
            plain = yaml.safe_load(value) == value
        except yaml.YAMLError:
            plain = False
        if plain and "&" not in value:
            return value
    if isinstance(value, tuple):
        value = list(value)
    return json.dumps(value, ensure_ascii=False)


def _create_dataset(dataset: str, size: int, seed: int, params: GymParams) -> Any:
    import reasoning_gym

    try:
        return reasoning_gym.create_dataset(
            dataset, size=size, seed=reasoning_gym_seed(seed), **dict(params)
        )
    except (AssertionError, TypeError, ValueError) as exc:
        settings = ", ".join(f"{k}={v!r}" for k, v in params) or "its defaults"
        raise UserError(
            f"gym:{dataset} rejects the settings {settings}: {exc or type(exc).__name__}."
        ) from None


def generate_entries(dataset: str, size: int, seed: int, params: GymParams) -> list[dict]:
    """Items 0..size-1 of a dataset, built in this process (see `load_entries`).

    Some reasoning-gym generators draw from the unseeded global `random` module (list_functions'
    odd-number helper) or seed numpy's global RNG themselves (pool_matrix), so both are seeded
    per item (item i stays a function of (seed, i)); the caller's streams are restored after.
    """
    with _global_rngs_restored():
        built = _create_dataset(dataset, size, seed, params)
        entries = []
        for index in range(size):
            _seed_global_rngs(derive_seed(seed, "reasoning-gym global rng", index))
            entries.append(built[index])
    return entries


def _seed_global_rngs(value: int) -> None:
    import random

    import numpy as np

    random.seed(value)
    np.random.seed(value)


@contextlib.contextmanager
def _global_rngs_restored() -> Iterator[None]:
    """Put Python's and numpy's global RNG states back as they were (the trainer checkpoints
    them; building or scoring a puzzle must not move them)."""
    import random

    import numpy as np

    saved = random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])


# (dataset, seed, params) -> the longest list of entries generated so far in this process.
# Item i depends only on (seed, params, i), so a shorter request is a prefix of a longer one.
_ENTRIES: dict[tuple[str, int, GymParams], list[dict]] = {}


def load_entries(dataset: str, size: int, seed: int, params: GymParams = ()) -> list[dict]:
    """Items 0..size-1 of a dataset, identical in every process: generated with the string-hash
    seed pinned (in a helper process when this one runs with another), cached per process."""
    key = (dataset, seed, params)
    cached = _ENTRIES.get(key)
    if cached is None or len(cached) < size:
        cached = call_with_fixed_hash_seed(generate_entries, dataset, size, seed, params)
        _ENTRIES[key] = cached
    return cached[:size]


def _extract(response: str) -> tuple[str, str]:
    """Return (answer, how it was found)."""
    text = strip_reasoning(response)
    tagged = _ANSWER.findall(text)
    if tagged:
        return tagged[-1].strip(), "<answer> tag"
    boxed = _last_boxed(text)
    if boxed is not None:
        return boxed, "\\boxed{}"
    return last_answer_line(text), "last line (no <answer> tag)"


def _last_boxed(text: str) -> str | None:
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed{") - 1
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j].strip()
    return None


class GymTask(Task):
    """One Reasoning Gym dataset (with optional config settings) as a registry task."""

    domain = "logic"
    procedural = True
    partial_credit = True

    def __init__(self, config: GymConfig) -> None:
        config.validate()
        self.config = config
        self.name = config.task_name
        version = metadata.version("reasoning-gym")
        # The size is not part of the version: item i depends only on (seed, i), so a run can grow.
        self.version = f"reasoning-gym=={version};{EXTRACTION_VERSION};seed={config.seed}"
        if config.seed:  # problems of a nonzero data seed changed when the stride came in
            self.version += f";rg_seed={reasoning_gym_seed(config.seed)}"
        self.source = GYM_SOURCE
        self._dataset: Any = None

    @property
    def dataset(self) -> Any:
        """The dataset object whose `score_answer` scores responses.

        Its own items are never used: scoring reads the entry held by each problem, which
        `load_entries` built identically in every process (checked for every dataset)."""
        if self._dataset is None:
            cfg = self.config
            with _global_rngs_restored():
                self._dataset = _create_dataset(cfg.dataset, cfg.limit, cfg.seed, cfg.params)
        return self._dataset

    def load(self) -> list[Problem]:
        cfg = self.config
        entries = load_entries(cfg.dataset, cfg.limit, cfg.seed, cfg.params)
        return [
            Problem(
                id=str(index),
                question=entry["question"],
                answer=reference_answer(cfg.dataset, entry),
                metadata={"entry": entry},
            )
            for index, entry in enumerate(entries)
        ]

    def prompt(self, problem: Problem) -> str:
        return f"{problem.question}\n\n{ANSWER_INSTRUCTION}"

    def tags(self, problem: Problem) -> dict[str, str]:
        """Reasoning Gym's category of the dataset, and the item's own value of each difficulty
        setting its generator records (e.g. basic_arithmetic's `num_terms`, `num_digits`)."""
        meta = (problem.metadata.get("entry") or {}).get("metadata") or {}
        tags = {"category": gym_category(self.config.dataset)}
        for key in meta.get("difficulty") or {}:
            if isinstance(meta.get(key), (int, float, str, bool)):
                tags[key] = str(meta[key])
        return tags

    def score(self, response: str, problem: Problem) -> Score:
        answer, how = _extract(response)
        if not answer:
            return Score(0.0, "empty response", extraction="none found")
        entry = problem.metadata.get("entry") or {"answer": problem.answer, "metadata": {}}
        try:
            value = float(self.dataset.score_answer(answer, entry))
        except Exception as exc:  # a scorer crash on odd output is a wrong answer, not a halt
            why = f"scorer error on {how} answer: {type(exc).__name__}"
            return Score(0.0, why, answer=answer, extraction=how)
        value = min(1.0, max(0.0, value))
        shown = answer if len(answer) <= 60 else answer[:57] + "..."
        reason = f"{how} answer {shown!r} scored {value:g} by {self.name}"
        return Score(value, reason, answer=answer, extraction=how)


def build_gym_task(argument: str, options: TaskOptions) -> GymTask:
    """Registry builder for `gym:<dataset>[?field=value&...]` (`--limit` defaults to 50 here)."""
    dataset, params = parse_gym_argument(argument)
    limit = options.limit if options.limit is not None else DEFAULT_GYM_LIMIT
    return GymTask(GymConfig(dataset=dataset, limit=limit, seed=options.seed, params=params))


def catalogue_entries() -> list[TaskEntry]:
    """Every usable Reasoning Gym dataset with its default config, as the registry lists them."""
    return [
        TaskEntry(
            name=f"gym:{dataset}",
            domain=GymTask.domain,
            verifier=GYM_VERIFIER,
            source=GYM_SOURCE,
            size=f"--limit (default {DEFAULT_GYM_LIMIT})",
            build=partial(build_gym_task, dataset),
        )
        for dataset in gym_dataset_names()
    ]


FAMILY = Family(
    prefix="gym",
    domain=GymTask.domain,
    verifier=GYM_VERIFIER,
    usage="gym:<dataset>[?<config field>=<value>&...] (see the list)",
    build=build_gym_task,
)
