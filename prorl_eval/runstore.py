"""A run folder: `run.json` (what produced it), `samples.jsonl` (the rows), `results.json`.

Resuming is the run folder's job. `RunStore.open` refuses a folder whose recorded model, sampling
parameters or task versions differ from the command's (mixing them would make pass@k meaningless),
repairs a final row cut short by a crash, and reports which (task, problem_id, sample_idx) rows
already exist so only the missing ones are generated. Nothing in an existing folder is deleted.

Example:
    >>> store = RunStore.open("runs/x", settings)      # doctest: +SKIP
    >>> store.done                                     # doctest: +SKIP
    {('gym:basic_arithmetic', '0', 0), ...}
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from prorl_eval.errors import UserError
from prorl_eval.fingerprints import FIELD, collect, differing, report_mismatch
from prorl_eval.jsonio import ensure_writable_dir, read_json, write_json_atomic
from prorl_eval.schema import SampleKey, SampleWriter, iter_samples, repair_torn_tail, sample_key

MANIFEST_FILE = "run.json"
SAMPLES_FILE = "samples.jsonl"
RESULTS_FILE = "results.json"


def describe_difference(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> str | None:
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found = describe_difference(a, b, f"{prefix}{key}.")
            if found:
                return found
        elif a != b:
            return f"{prefix}{key}={a!r} there, {b!r} now"
    return None


def _resume_state(samples_path: Path) -> tuple[set[SampleKey], dict[tuple[str, str], str]]:
    """The keys of the rows already written and their problems' fingerprints (one pass)."""
    if not samples_path.exists():
        return set(), {}
    done: set[SampleKey] = set()

    def keys_seen() -> Any:
        for row in iter_samples(samples_path):
            done.add(sample_key(row))
            yield {key: row.get(key) for key in ("task", "problem_id", FIELD)}

    fingerprints, conflicts = collect(keys_seen())
    report_mismatch(
        conflicts,
        len(fingerprints),
        f"rows of {samples_path}",
        allow=False,
        fix="the folder mixes rows of different problems; use a new --out",
    )
    return done, fingerprints


class RunStore:
    """Owns one run folder; see the module docstring."""

    def __init__(
        self,
        folder: Path,
        manifest: dict[str, Any],
        done: set[SampleKey],
        fingerprints: dict[tuple[str, str], str] | None = None,
    ) -> None:
        self.folder = folder
        self.manifest = manifest
        self.done = done
        self.fingerprints = fingerprints or {}

    @property
    def samples_path(self) -> Path:
        return self.folder / SAMPLES_FILE

    @property
    def results_path(self) -> Path:
        return self.folder / RESULTS_FILE

    @classmethod
    def open(cls, folder: str | Path, settings: dict[str, Any]) -> RunStore:
        """Open or create a run folder for a command with these settings.

        `settings` holds `model` (identity), `sampling` and `tasks` ({name: task description}),
        and optionally `generation` (where samples are made: backend, server URL, parallelism).
        Model and sampling must equal the recorded ones; a task already in the folder must have the
        same description; new tasks are added to the manifest. `generation` is only recorded: the
        manifest lists each distinct one, so a run resumed elsewhere says so.
        """
        settings = dict(settings)
        generation = settings.pop("generation", None)
        folder = ensure_writable_dir(folder)
        manifest_path = folder / MANIFEST_FILE
        samples_path = folder / SAMPLES_FILE
        if manifest_path.exists():
            manifest = read_json(manifest_path, "run manifest")
            cls._check_compatible(folder, manifest, settings)
            manifest["tasks"].update(settings["tasks"])
        elif samples_path.exists() and samples_path.stat().st_size > 0:
            raise UserError(
                f"{folder} holds {SAMPLES_FILE} but no {MANIFEST_FILE}, so its settings are "
                "unknown; use a new --out, or recompute with --samples."
            )
        else:
            manifest = {
                "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                **settings,
            }
        if generation is not None and generation not in manifest.setdefault("generation", []):
            manifest["generation"].append(generation)
        if repair_torn_tail(samples_path):
            manifest.setdefault("repairs", []).append("dropped a row cut short by a crash")
        done, fingerprints = _resume_state(samples_path)
        write_json_atomic(manifest_path, manifest)
        return cls(folder, manifest, done, fingerprints)

    def check_problems(self, current: dict[tuple[str, str], str]) -> None:
        """ProblemMismatch when rows already here were made on other problems than `current`
        ({(task, problem_id): fingerprint} of the command's tasks): resuming would mix them."""
        keys = differing(self.fingerprints, current)
        shared = len(self.fingerprints.keys() & current.keys())
        report_mismatch(
            keys,
            shared,
            f"{self.samples_path} and this command's tasks",
            allow=False,
            fix="use a new --out for the new problems (the rows here stay as they are)",
        )

    @staticmethod
    def _check_compatible(folder: Path, manifest: dict[str, Any], settings: dict[str, Any]) -> None:
        for section in ("model", "sampling"):
            diff = describe_difference(manifest.get(section, {}), settings[section])
            if diff:
                raise UserError(
                    f"{folder} was created with different {section} settings ({diff}); "
                    "use a new --out for new settings, or repeat the original ones to resume."
                )
        for name, described in settings["tasks"].items():
            old = manifest.get("tasks", {}).get(name)
            if old is not None and old != described:
                diff = describe_difference(old, described)
                raise UserError(
                    f"{folder} holds task {name} made differently ({diff}); use a new --out."
                )

    def writer(self) -> SampleWriter:
        return SampleWriter(self.samples_path)

    def write_results(self, results: dict[str, Any]) -> Path:
        write_json_atomic(self.results_path, results)
        return self.results_path
