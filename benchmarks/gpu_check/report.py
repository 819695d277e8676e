"""results.md: a summary table of the sections, then each section's figures."""

from __future__ import annotations

from typing import Any

from benchmarks.gpu_check.sections import BY_NAME


def fmt(value: Any) -> str:
    """Numbers to 4 significant figures (MFU-like shares too); text as it is."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value).replace("|", "/")
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.4g}"


def markdown(results: list[dict], header: dict[str, str]) -> str:
    lines = ["# GPU check", ""]
    lines += [f"- {key}: {value}" for key, value in header.items()]
    lines += ["", "| section | what | status | seconds | reason |", "|---|---|---|---:|---|"]
    for r in results:
        about = BY_NAME[r["section"]].about
        lines.append(
            f"| {r['section']} | {about} | {r['status']} | {r['seconds']:.1f} | "
            f"{fmt(r.get('reason', ''))} |"
        )
    for r in results:
        if not r["metrics"]:
            continue
        lines += ["", f"## {r['section']}", "", "| figure | value |", "|---|---:|"]
        lines += [f"| {key} | {fmt(value)} |" for key, value in r["metrics"].items()]
    return "\n".join(lines) + "\n"
