"""Export a run folder in lm-eval's or lighteval's results layout, so their dashboards and scripts
read prorl runs.

- `lm-eval`: `<out>/<model>/results_<date>.json` with lm-eval 0.4's keys (`results` with
  `metric,filter` names and `_stderr` twins, `versions`, `n-shot`, `higher_is_better`,
  `n-samples`, `configs`, `config`, `date`, `model_name`) and one
  `samples_<task>_<date>.jsonl` per task (lm-eval's sample-log fields: `doc_id`, `doc`, `target`,
  `arguments`, `resps`, `filtered_resps`, `filter`, `metrics`, the hashes, and each metric's
  value for that problem).
- `lighteval`: `<out>/results/<model>/results_<date>.json` as lighteval's `EvaluationTracker`
  writes it (`config_general`, `results` with an `all` entry, `versions`, `config_tasks`,
  `summary_tasks`, `summary_general`; task keys `<task>|0` with `|` written as `:` as lighteval
  does) and `<out>/details/<model>/<date>/details_<task>|0_<date>.parquet` (columns `doc`,
  `model_response`, `metric`).

Metrics: pass@k for each k of results.json (`pass@k`), maj@k where the verifier extracts answers
(`maj@k`) and the mean score (`avg@n`), each with the standard error of the mean over problems
(sample standard deviation / sqrt(problems)), the statistic both tools print beside a value.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from prorl_eval.errors import UserError
from prorl_eval.jsonio import read_json, write_json_atomic
from prorl_eval.metrics import is_correct
from prorl_eval.passk import pass_at_k
from prorl_eval.runstore import MANIFEST_FILE, RESULTS_FILE, SAMPLES_FILE
from prorl_eval.schema import read_samples
from prorl_eval.voting import has_answers, maj_at_k_values

FORMATS = ("lm-eval", "lighteval")


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _stderr(values: np.ndarray) -> float:
    return float(values.std(ddof=1) / np.sqrt(values.size)) if values.size > 1 else 0.0


def _sanitized(model: str) -> str:
    return re.sub(r"[\"<>:/|\\?*\[\]]+", "__", model).strip("_") or "model"


class RunData:
    """A run folder's results, metadata and per-problem metric values, read once."""

    def __init__(self, folder: Path) -> None:
        if not (folder / RESULTS_FILE).is_file() or not (folder / SAMPLES_FILE).is_file():
            raise UserError(
                f"{folder} is not a run folder with {RESULTS_FILE} and {SAMPLES_FILE}; pass a "
                "folder written by `prorl-eval pass-at-k`."
            )
        self.folder = folder
        self.results = read_json(folder / RESULTS_FILE, "results file")
        manifest = folder / MANIFEST_FILE
        self.run = read_json(manifest, "run file") if manifest.is_file() else {}
        self.ks = [int(k) for k in self.results.get("ks", [])]
        problems: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
        for row in read_samples(folder / SAMPLES_FILE):
            if row["task"] in self.results["tasks"]:
                problems[row["task"]][str(row["problem_id"])].append(row)
        self.problems = {
            task: {pid: sorted(rs, key=lambda r: int(r["sample_idx"])) for pid, rs in by.items()}
            for task, by in problems.items()
        }
        self.model = str(self.results.get("model") or self.run.get("model", {}).get("model", "?"))

    def per_problem(self, task: str) -> dict[str, np.ndarray]:
        """{metric name: value per problem} in problem order."""
        rows = list(self.problems[task].values())
        n = np.array([len(r) for r in rows])
        c = np.array([sum(is_correct(s) for s in r) for r in rows])
        values = {f"pass@{k}": np.atleast_1d(pass_at_k(n, c, k)) for k in self.ks}
        answers = [[s.get("extracted_answer") for s in r] for r in rows]
        if any(has_answers(a) for a in answers):
            votes = np.array([
                maj_at_k_values(a, [float(is_correct(s)) for s in r], self.ks)
                for a, r in zip(answers, rows, strict=True)
            ])  # fmt: skip
            values.update({f"maj@{k}": votes[:, i] for i, k in enumerate(self.ks)})
        values[f"avg@{int(n.min())}"] = np.array([np.mean([s["score"] for s in r]) for r in rows])
        return values

    @property
    def date(self) -> str:
        written = self.results.get("written") or dt.datetime.now(dt.timezone.utc).isoformat()
        return re.sub(r"[^0-9T]", "-", written[:19])

    def version(self, task: str) -> str:
        return str(self.run.get("tasks", {}).get(task, {}).get("version", ""))

    @property
    def sampling(self) -> dict[str, Any]:
        return dict(self.results.get("sampling") or self.run.get("sampling") or {})


def _generation_kwargs(data: RunData) -> dict[str, Any]:
    sampling = data.sampling
    return {
        "temperature": sampling.get("temperature"), "top_p": sampling.get("top_p"),
        "max_gen_toks": sampling.get("max_new_tokens"), "do_sample": True,
        "seed": sampling.get("seed"),
    }  # fmt: skip


def export_lm_eval(data: RunData, out: Path) -> list[Path]:
    """lm-eval's results JSON and sample logs (see the module doc)."""
    folder = out / _sanitized(data.model)
    folder.mkdir(parents=True, exist_ok=True)
    results, configs, files = {}, {}, []
    for task in data.results["tasks"]:
        values = data.per_problem(task)
        entry: dict[str, Any] = {"alias": task}
        for name, per in values.items():
            entry[f"{name},none"] = float(per.mean())
            entry[f"{name}_stderr,none"] = _stderr(per)
        results[task] = entry
        configs[task] = {
            "task": task, "output_type": "generate_until", "repeats": data.results.get("n"),
            "generation_kwargs": _generation_kwargs(data),
            "metadata": {"version": data.version(task), "harness": "prorl-eval"},
        }  # fmt: skip
        files.append(_lm_eval_samples(data, task, values, folder))
    names = {task: list(data.per_problem(task)) for task in data.results["tasks"]}
    document = {
        "results": results,
        "group_subtasks": {task: [] for task in results},
        "configs": configs,
        "versions": {task: data.version(task) for task in results},
        "n-shot": {task: 0 for task in results},
        "higher_is_better": {task: {name: True for name in names[task]} for task in results},
        "n-samples": {
            task: {"original": len(data.problems[task]), "effective": len(data.problems[task])}
            for task in results
        },
        "config": {
            "model": str(data.results.get("backend", "")),
            "model_args": f"pretrained={data.model}",
            "gen_kwargs": _generation_kwargs(data),
            "limit": data.results.get("limit"),
            "random_seed": data.sampling.get("seed"),
        },
        "date": data.results.get("written"),
        "model_name": data.model,
        "model_name_sanitized": _sanitized(data.model),
    }
    path = folder / f"results_{data.date}.json"
    write_json_atomic(path, document)
    return [path, *files]


def _lm_eval_samples(data: RunData, task: str, values: dict[str, np.ndarray], folder: Path) -> Path:
    path = folder / f"samples_{_sanitized(task)}_{data.date}.jsonl"
    lines = []
    for index, (pid, rows) in enumerate(data.problems[task].items()):
        prompt, target = rows[0].get("prompt", ""), rows[0].get("gold_answer")
        record = {
            "doc_id": index,
            "doc": {"problem_id": pid, "prompt": prompt, "tags": rows[0].get("tags", {})},
            "target": target,
            "arguments": {"gen_args_0": {"arg_0": prompt, "arg_1": _generation_kwargs(data)}},
            "resps": [[row.get("response", "")] for row in rows],
            "filtered_resps": [row.get("extracted_answer") for row in rows],
            "filter": "none",
            "metrics": list(values),
            "doc_hash": _sha(pid),
            "prompt_hash": _sha(prompt),
            "target_hash": _sha(str(target)),
        }
        record.update({name: float(per[index]) for name, per in values.items()})
        lines.append(json.dumps(record, ensure_ascii=False))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def export_lighteval(data: RunData, out: Path) -> list[Path]:
    """lighteval's results JSON and details parquet files (see the module doc)."""
    model = _sanitized(data.model)
    details = out / "details" / model / data.date
    details.mkdir(parents=True, exist_ok=True)
    results, files = {}, []
    for task in data.results["tasks"]:
        values = data.per_problem(task)
        key = f"{task}|0"
        results[key] = {name: float(per.mean()) for name, per in values.items()}
        results[key].update({f"{name}_stderr": _stderr(per) for name, per in values.items()})
        files.append(_lighteval_details(data, task, values, details / f"details_"
                                        f"{_sanitized(key)}_{data.date}.parquet"))  # fmt: skip
    shared = set.intersection(*(set(v) for v in results.values())) if results else set()
    results["all"] = {name: float(np.mean([v[name] for v in results.values()]))
                      for name in sorted(shared)}  # fmt: skip
    final = {
        name: {key.replace("|", ":"): value for key, value in part.items()}
        for name, part in _lighteval_document(data, results).items()
    }  # lighteval's generate_final_dict writes "|" as ":" in every key
    folder = out / "results" / model
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"results_{data.date}.json"
    write_json_atomic(path, final)
    return [path, *files]


def _lighteval_details(data: RunData, task: str, values: dict[str, np.ndarray], path: Path) -> Path:
    """One row per problem: the doc, the model's responses, the metric values (JSON text)."""
    import pandas as pd

    records = []
    for i, (pid, rows) in enumerate(data.problems[task].items()):
        doc = {"problem_id": pid, "query": rows[0].get("prompt", ""),
               "gold": rows[0].get("gold_answer")}  # fmt: skip
        records.append({
            "doc": json.dumps(doc),
            "model_response": json.dumps({"text": [r.get("response", "") for r in rows]}),
            "metric": json.dumps({name: float(per[i]) for name, per in values.items()}),
        })  # fmt: skip
    pd.DataFrame(records).to_parquet(path, index=False)
    return path


def _lighteval_document(data: RunData, results: dict[str, Any]) -> dict[str, Any]:
    """The results file's sections, as lighteval's EvaluationTracker fills them."""
    counts = {f"{t}|0": sum(len(r) for r in data.problems[t].values()) for t in data.problems}
    summary = {"hashes": {}, "truncated": 0, "padded": 0}
    return {
        "config_general": {
            "lighteval_sha": None,
            "num_fewshot_seeds": 1,
            "max_samples": data.results.get("limit"),
            "job_id": 0,
            "model_name": data.model,
            "start_time": None,
            "end_time": None,
            "total_evaluation_time_secondes": str(data.results.get("timing", {}).get("generate_s")),
            "model_config": {
                "backend": data.results.get("backend"),
                "generation_parameters": _generation_kwargs(data),
            },
        },
        "results": results,
        "versions": {f"{t}|0": data.version(t) for t in data.problems},
        "config_tasks": {
            f"{t}|0": {"name": t, "num_samples": [data.results.get("n")]} for t in data.problems
        },
        "summary_tasks": {
            key: {
                **summary,
                "non_truncated": n,
                "non_padded": n,
                "effective_few_shots": 0.0,
                "num_truncated_few_shots": 0,
            }
            for key, n in counts.items()
        },
        "summary_general": {
            **summary,
            "non_truncated": sum(counts.values()),
            "non_padded": sum(counts.values()),
        },
    }


def export_run(folder: str | Path, fmt: str, out: str | Path) -> list[Path]:
    """Write `folder`'s run in `fmt` ("lm-eval" or "lighteval") under `out`; the files written."""
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}.")
    data = RunData(Path(folder))
    target = Path(out)
    if target.resolve() == data.folder.resolve():
        raise UserError("--out must differ from the run folder; the run is never overwritten.")
    return (export_lm_eval if fmt == "lm-eval" else export_lighteval)(data, target)
