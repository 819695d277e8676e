"""Resolve what the user typed after `--model` into something a backend can load.

One function, `resolve_model`, serves both CLIs. A model spec is one of:

- an alias (`smollm2-135m-instruct`, the embedded offline default);
- a local folder holding a Hugging Face model (`config.json`), or a prorl training checkpoint whose
  `policy/` subfolder holds one;
- a Hugging Face hub id, optionally pinned to a revision: `Qwen/Qwen2.5-1.5B-Instruct@main`.

A spec that looks like a path (starts with `.`, `/` or `~`, or exists on disk) is always treated
as a path, so a typo in a folder name fails clearly instead of being sent to the hub.

Example:
    >>> resolve_model("Qwen/Qwen2.5-Math-1.5B@v1").revision
    'v1'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from prorl_eval.errors import UserError
from prorl_eval.models import EMBEDDED_MODELS, embedded_model_dir

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
# A prorl-train run folder holds checkpoint-<step>/ folders; one is complete once its state file
# exists (written last, before the atomic rename), and its policy/ is a Hugging Face model folder.
STATE_FILE = "trainer_state.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def training_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints of a prorl-train run folder as (step, path), oldest first."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = []
    for path in run_dir.iterdir():
        match = _CHECKPOINT.match(path.name)
        if match and (path / STATE_FILE).is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: `name` is what the user asked for, `path` what loaders receive."""

    name: str
    path: str
    source: str  # "alias", "local", "checkpoint" or "hub"
    revision: str | None = None

    @property
    def identity(self) -> dict[str, str | None]:
        """The fields that decide whether two runs used the same model."""
        return {"model": self.name, "model_revision": self.revision}


def _looks_like_path(spec: str) -> bool:
    return spec.startswith((".", "/", "~")) or Path(spec).expanduser().exists()


def resolve_model(spec: str, *, materialize: bool = True) -> ModelRef:
    """Turn a `--model` value into a ModelRef; UserError if it cannot name a model.

    With `materialize=False` an alias is not converted yet (its path is left empty), which lets
    callers check a run's settings before paying for a model conversion.
    """
    spec = spec.strip()
    if not spec:
        raise UserError("--model is empty; pass an alias, a local folder or a hub id.")
    if spec.lower() in EMBEDDED_MODELS:
        alias = spec.lower()
        path = str(embedded_model_dir(alias)) if materialize else ""
        return ModelRef(name=alias, path=path, source="alias")
    if _looks_like_path(spec):
        return _resolve_local(spec)
    name, _, revision = spec.partition("@")
    if _HUB_ID.match(name):
        return ModelRef(name=name, path=name, source="hub", revision=revision or None)
    known = ", ".join(sorted(EMBEDDED_MODELS))
    raise UserError(
        f"unknown model '{spec}': not an alias ({known}), an existing folder, or a hub id "
        "like org/name."
    )


def _resolve_local(spec: str) -> ModelRef:
    folder = Path(spec).expanduser()
    if not folder.is_dir():
        raise UserError(f"model folder {folder} does not exist; check the path given to --model.")
    if (folder / "config.json").is_file():
        return ModelRef(name=str(folder.resolve()), path=str(folder.resolve()), source="local")
    policy = folder / "policy"
    if (policy / "config.json").is_file():
        return ModelRef(name=str(folder.resolve()), path=str(policy.resolve()), source="checkpoint")
    raise UserError(
        f"{folder} holds no config.json (nor policy/config.json); point --model at a Hugging "
        "Face model folder or a prorl checkpoint."
    )
