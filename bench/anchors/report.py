"""bench/anchors' output: the markdown table of rates and ratios, and the chart of the ratios."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# (numerator, denominator, target: minimum ratio per column or None, what it says)
COMPARISONS: list[tuple[str, str, tuple[float | None, float | None], str]] = [
    ("typed_c", "raw_c", (0.95, 0.90), "typed → C shim / raw Gearman"),
    ("typed_c", "grpc_cpp", (1.5, 1.5), "typed → C shim / gRPC → C++"),
    ("typed_python", "grpc_py", (1.5, 1.5), "typed → Python / grpcio ↔ grpcio"),
    ("typed_java", "grpc_cpp", (None, None), "typed → Java / gRPC → C++"),
    ("typed_java", "raw_c", (None, None), "typed → Java / raw Gearman → C"),
    ("typed_python", "typed_c", (None, None), "typed → Python worker / typed → C shim"),
    ("grpc_cpp", "raw_c", (None, None), "gRPC → C++ / raw Gearman → C"),
]


def _mark(ratio: float, target: float | None) -> str:
    if target is None:
        return ""
    return f" (≥ {target:g} {'✓' if ratio >= target else '✗'})"


def write_report(medians: Mapping[tuple[str, str, str], float],
                 rates: Mapping[tuple[str, str, str], Sequence[float]], names: Sequence[str],
                 labels: Mapping[str, str], sizes: Mapping[str, int], columns: Sequence[str],
                 meta: Mapping[str, Any], out: Path) -> str:
    keys = [(s, c) for s in sizes for c in columns]
    lines = [f"Calls per second, median of {meta['rounds']} rounds of {meta['seconds']} s "
             f"({meta['date']}, {meta['cpus']} CPUs, load average after {meta.get('load', '?')}, "
             f"worker concurrency {meta['concurrency']}):",
             "",
             "| path | " + " | ".join(f"{s}, {c}" for s, c in keys) + " |",
             "|---|" + "---:|" * len(keys)]
    for name in names:
        cells = [f"{medians[(name, s, c)]:.0f}" for s, c in keys]
        lines.append(f"| {labels[name]} | " + " | ".join(cells) + " |")
    lines += ["", "Ratios, median of the per-round ratios (higher: the first path is faster):", "",
              "| ratio | " + " | ".join(f"{s}, {c}" for s, c in keys) + " |",
              "|---|" + "---:|" * len(keys)]
    chart: list[tuple[str, list[float], list[float | None]]] = []
    for num, den, goal, text in COMPARISONS:
        if num not in names or den not in names:
            continue
        ratios = [statistics.median(a / b for a, b in zip(rates[(num, s, c)], rates[(den, s, c)],
                                                          strict=True)) for s, c in keys]
        goals = [goal[columns.index(c)] for _, c in keys]
        lines.append(f"| {text} | " + " | ".join(
            f"{r:.2f}{_mark(r, g)}" for r, g in zip(ratios, goals, strict=True)) + " |")
        chart.append((text, ratios, goals))
    lines += ["", "Spread (min to max over the rounds, calls/s):", ""]
    for name in names:
        spread = ", ".join(
            f"{s} {c}: {min(rates[(name, s, c)]):.0f} to {max(rates[(name, s, c)]):.0f}"
            for s, c in keys)
        lines.append(f"- {labels[name]}: {spread}")
    text = "\n".join(lines) + "\n"
    (out / "anchors.md").write_text(text)
    if chart:
        _chart(chart, [f"{s}\n{c}" for s, c in keys], out / "anchors.png", meta)
    return text


def _chart(rows: list[tuple[str, list[float], list[float | None]]], keys: list[str], path: Path,
           meta: Mapping[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 5.5))
    width = 0.8 / len(keys)
    for k, key in enumerate(keys):
        xs = [i + (k - (len(keys) - 1) / 2) * width for i in range(len(rows))]
        values = [row[1][k] for row in rows]
        bars = ax.bar(xs, values, width * 0.95, label=key.replace("\n", ", "))
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
        for x, (_, _, goals) in zip(xs, rows, strict=True):
            goal = goals[k]
            if goal is not None:
                ax.hlines(goal, x - width / 2, x + width / 2, colors="black", linewidth=2)
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(rows)), [row[0].replace(" / ", "\n/ ") for row in rows], fontsize=8)
    ax.set_ylabel("ratio of calls/s (first path / second)")
    ax.set_title(f"bridge anchors: ratios within one run ({meta['date']}, {meta['cpus']} CPUs); "
                 "black ticks: targets", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
