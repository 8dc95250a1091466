"""Render the latest results into docs/performance.md, between its markers.

    python -m bench docs [--size full] [--store sqlite]

Only the region between `<!-- bench:begin -->` and `<!-- bench:end -->` is rewritten; the
analysis around it is written by hand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.harness import RESULTS, ROOT

DOC = ROOT / "docs" / "performance.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def result_path(scenario: str, store: str, size: str) -> Path:
    suffix = ("" if store == "sqlite" else f"-{store}") + ("" if size == "full" else f"-{size}")
    return RESULTS / f"{scenario}{suffix}.json"


def section(report: dict[str, Any]) -> str:
    lines = [
        f"### {report['scenario']}: {report['title']}",
        "",
        f"`{report['command']}`: store {report['store']}, size {report['size']},"
        f" finished {report['finished_at']}, {report['cpus']} CPUs.",
        "",
        "| metric | tidings | baseline (same run) |",
        "|---|--:|--:|",
    ]
    lines += [f"| {r['metric']} | {r['tidings']} | {r['baseline']} |" for r in report["rows"]]
    for target in report["targets"]:
        verdict = "**held**" if target["held"] else "**missed**"
        lines += ["", f"Target: {target['goal']}. Measured {target['value']}: {verdict}."]
    return "\n".join(lines) + "\n"


def render(scenarios: tuple[str, ...], store: str, size: str) -> str:
    reports = {}
    for name in scenarios:
        path = result_path(name, store, size)
        if path.exists():
            reports[name] = json.loads(path.read_text())
    summary = ["| scenario | target | measured | holds |", "|---|---|---|---|"]
    for name, report in reports.items():
        for target in report["targets"]:
            holds = "yes" if target["held"] else "**no**"
            summary.append(f"| {name} | {target['goal']} | {target['value']} | {holds} |")
    parts = ["\n".join(summary) + "\n"]
    for name in scenarios:
        if name in reports:
            parts.append(section(reports[name]))
        else:
            parts.append(f"### {name}\n\nNo result yet.\n")
    return "\n".join(parts)


def update(scenarios: tuple[str, ...], store: str, size: str) -> None:
    text = DOC.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(f"{head}{BEGIN}\n{render(scenarios, store, size)}{END}{tail}")
