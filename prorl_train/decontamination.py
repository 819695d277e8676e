"""The start-up decontamination check: training problems shared with validation or evaluation.

Before any model loads, the trainer compares every problem of the training pool (`DataMix`, after
the holdout) with the reference problems: the validation tasks (`val.tasks` at `val.data_seed`
and `val.limit`; when `val.tasks` is empty validation runs on the mix itself, so only its
procedural tasks, at the validation seed, are compared), the holdout tasks (`data.holdout`) and
`data.decontaminate_tasks` (the benchmarks you will report, e.g. `math,code,stem,ifeval`; suite
members whose data cannot be loaded here are skipped and named). A training problem is shared when

- its normalised text (lowercase, runs of non-word characters collapsed to one space) equals a
  reference problem's, or
- it shares a run of `data.decontaminate_ngram` words (13, the rule of GPT-3's and lm-eval's
  decontamination) with a reference problem. Runs that occur in more than `COMMON_NGRAM` of the
  task's own training problems are template text (RLVR-IFeval repeats IFEval's instruction
  sentences in thousands of prompts), not a leak, and are ignored. Procedural tasks (Reasoning
  Gym) are generated from templates, so only their exact repeats count.

The text compared is the problem's statement (`Problem.question`), not the prompt: prompts add
the same instruction to every problem of a family. The counts go into a printed line and
`train_prompts.json` (`decontamination`). `data.decontaminate`: `drop` (default) removes the
shared problems and trains on, `keep` keeps them, `off` skips the check. Either way, a training
task with more than `data.max_contaminated_share` of its problems shared is refused (it is likely
a test set under another name); procedural tasks are never refused, since a generator with a
small problem space repeats itself across seeds.

Example:
    >>> index = ReferenceIndex.build({"aime": ["What is 2 + 2?"]}, n=13)
    >>> index.shared(["what is 2+2", "What is 3 + 3?"], procedural=False)
    ({0: 'aime'}, {})
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from prorl_eval.errors import UserError
from prorl_eval.tasks.base import Problem, Task

if TYPE_CHECKING:
    from prorl_train.config import TrainConfig
    from prorl_train.data import DataMix

# An n-gram found in more than this many problems of one training task is template text.
COMMON_NGRAM = 10
_NON_WORD = re.compile(r"[\W_]+")


def normalise(text: str) -> str:
    """Lowercase words separated by single spaces: `"How many?  $360$"` -> `"how many 360"`."""
    return _NON_WORD.sub(" ", text.lower()).strip()


def word_ngrams(text: str, n: int) -> set[str]:
    """The runs of `n` consecutive words of a normalised text (none when it is shorter)."""
    words = text.split()
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)} if n > 0 else set()


def problem_text(task: Task, problem: Problem) -> str:
    """What is compared: the problem's statement, else its prompt."""
    return problem.question or task.prompt(problem)


@dataclass
class ReferenceIndex:
    """The reference problems' normalised texts and n-grams, each mapped to a task holding it."""

    n: int
    exact: dict[str, str] = field(default_factory=dict)
    grams: dict[str, str] = field(default_factory=dict)

    @classmethod
    def build(
        cls, texts: dict[str, list[str]], n: int, procedural: frozenset[str] = frozenset()
    ) -> ReferenceIndex:
        """From {reference task: its problem texts}; procedural tasks give no n-grams."""
        index = cls(n)
        for task, items in texts.items():
            for text in map(normalise, items):
                index.exact.setdefault(text, task)
                if task not in procedural:
                    for gram in word_ngrams(text, n):
                        index.grams.setdefault(gram, task)
        return index

    def shared(self, texts: list[str], procedural: bool) -> tuple[dict[int, str], dict[int, str]]:
        """({position: reference task} of exact repeats, the same of n-gram overlaps) among one
        training task's problem texts."""
        exact, hits = {}, {}
        for position, text in enumerate(map(normalise, texts)):
            if text in self.exact:
                exact[position] = self.exact[text]
            elif not procedural and self.grams:
                found = word_ngrams(text, self.n) & self.grams.keys()
                if found:
                    hits[position] = found
        seen = Counter(gram for found in hits.values() for gram in found)
        ngram = {}
        for position, found in hits.items():
            rare = sorted(gram for gram in found if seen[gram] <= COMMON_NGRAM)
            if rare:
                ngram[position] = self.grams[rare[0]]
        return exact, ngram


@dataclass(frozen=True)
class TaskShare:
    """One training task's count: its problems, the exact and n-gram shared ones, and where."""

    task: str
    problems: int
    exact: int
    ngram: int
    procedural: bool
    references: tuple[str, ...]
    examples: tuple[str, ...]  # up to 5 problem ids

    @property
    def shared(self) -> int:
        return self.exact + self.ngram

    @property
    def share(self) -> float:
        return self.shared / self.problems if self.problems else 0.0


def reference_specs(cfg: TrainConfig, mix: DataMix) -> list[tuple[str, str, int, int | None]]:
    """(what, --tasks value, data seed, limit) of every reference set; what: validation,
    holdout or decontaminate_tasks."""
    data, val = cfg.data, cfg.val
    specs = []
    if val.every > 0:
        own = [name for name, task in mix.tasks.items() if task.procedural]
        names = val.tasks or ",".join(own)
        if names:
            specs.append(("validation", names, val.data_seed, val.limit))
    holdout = mix.holdout.task_names(mix.tasks)
    if holdout:
        specs.append(("holdout", ",".join(holdout), mix.holdout.seed, mix.holdout.limit))
    if data.decontaminate_tasks.strip():
        specs.append(("decontaminate_tasks", data.decontaminate_tasks, data.holdout_seed, None))
    return specs


def reference_texts(
    cfg: TrainConfig, mix: DataMix
) -> tuple[dict[str, list[str]], frozenset[str], dict[str, str]]:
    """({reference task: problem texts}, the procedural ones, {skipped suite member: why})."""
    from prorl_eval.tasks.registry import TaskOptions, resolve_available_tasks

    texts: dict[str, list[str]] = {}
    procedural, skipped = set(), {}
    for _, spec, seed, limit in reference_specs(cfg, mix):
        options = TaskOptions(limit=limit, seed=seed, data_dir=cfg.data.data_dir)
        tasks, missing = resolve_available_tasks(spec, options)
        skipped.update(missing)
        for task in tasks:
            key = f"{task.name}@seed{seed}" if task.procedural else task.name
            texts.setdefault(key, []).extend(problem_text(task, p) for p in task.load())
            if task.procedural:
                procedural.add(key)
    return texts, frozenset(procedural), skipped


def count_shared(mix: DataMix, index: ReferenceIndex) -> tuple[list[TaskShare], dict]:
    """Per training task, its shared problems ({task: positions in mix.problems} too)."""
    shares, positions = [], {}
    for name, task in mix.tasks.items():
        problems = mix.problems[name]
        texts = [problem_text(task, p) for p in problems]
        exact, ngram = index.shared(texts, task.procedural)
        found = sorted({**exact, **ngram})
        positions[name] = found
        shares.append(
            TaskShare(
                task=name,
                problems=len(problems),
                exact=len(exact),
                ngram=len(ngram),
                procedural=task.procedural,
                references=tuple(sorted({*exact.values(), *ngram.values()})),
                examples=tuple(problems[i].id for i in found[:5]),
            )
        )
    return shares, positions


def refuse_above_threshold(shares: list[TaskShare], limit: float) -> None:
    """A UserError for the first non-procedural training task sharing more than `limit`."""
    for item in shares:
        if not item.procedural and item.share > limit:
            raise UserError(
                f"training task {item.task} shares {item.shared} of its {item.problems} problems "
                f"({item.share:.1%}) with {', '.join(item.references)} (ids "
                f"{', '.join(item.examples)}), above data.max_contaminated_share={limit}; train "
                "on other data, or raise data.max_contaminated_share (data.decontaminate=off "
                "skips the check)."
            )


def decontaminate(mix: DataMix, cfg: TrainConfig) -> dict[str, Any]:
    """Count the training problems shared with the reference sets, refuse above the threshold,
    drop them (`data.decontaminate=drop`); record and return the report (`mix.decontamination`).
    """
    data = cfg.data
    if data.decontaminate == "off":
        mix.decontamination = {"mode": "off"}
        return mix.decontamination
    texts, procedural, skipped = reference_texts(cfg, mix)
    index = ReferenceIndex.build(texts, data.decontaminate_ngram, procedural)
    shares, positions = count_shared(mix, index)
    refuse_above_threshold(shares, data.max_contaminated_share)
    if data.decontaminate == "drop":
        for name, found in positions.items():
            mix.remove(name, found)
    mix.decontamination = {
        "mode": data.decontaminate,
        "ngram": data.decontaminate_ngram,
        "max_contaminated_share": data.max_contaminated_share,
        "references": {task: len(items) for task, items in texts.items()},
        "skipped": skipped,
        "tasks": {s.task: {**asdict(s), "share": round(s.share, 6)} for s in shares},
        "shared": sum(s.shared for s in shares),
        "problems": sum(s.problems for s in shares),
    }
    return mix.decontamination


def summary_line(report: dict[str, Any]) -> str:
    """The printed line: `decontamination: 3 of 120 training problems shared with ...`."""
    if report["mode"] == "off":
        return "decontamination: off (data.decontaminate=off)"
    references = report["references"]
    if not references:
        return (
            f"decontamination: {report['problems']} training problems, no validation or "
            "evaluation task to compare with (val.tasks is the mix itself, no holdout)"
        )
    per_task = [
        f"{name} {t['exact']}+{t['ngram']}"
        for name, t in report["tasks"].items()
        if t["exact"] or t["ngram"]
    ]
    action = {"drop": "dropped", "keep": "kept"}[report["mode"]]
    reference_count = sum(references.values())
    line = (
        f"decontamination: {report['shared']} of {report['problems']} training problems shared "
        f"with {len(references)} reference task(s) ({reference_count} problems; exact + "
        f"{report['ngram']}-gram), {action}"
    )
    line += f": {', '.join(per_task)}" if per_task else ""
    if report["skipped"]:
        line += f"; not loadable here, skipped: {', '.join(sorted(report['skipped']))}"
    return line
