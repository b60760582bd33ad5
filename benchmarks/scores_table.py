"""Markdown tables of an evaluation's scores.csv and of the pipeline's per-rule benchmarks.

Usage: python benchmarks/scores_table.py results/storm   (prints markdown to stdout)
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd


def rmse_table(scores: pd.DataFrame) -> str:
    table = scores.pivot_table(
        index=["variable", "units", "lead_time_hours"], columns="forecast", values="rmse", sort=False
    ).reset_index()
    table["model / persistence"] = table["model"] / table["persistence"]
    lines = [
        "| variable | units | lead (h) | model | persistence | climatology | model / persistence |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in table.itertuples(index=False):
        lines.append(
            f"| {row.variable} | {row.units} | {row.lead_time_hours} | {row.model:.3g} | "
            f"{row.persistence:.3g} | {row.climatology:.3g} | {row[-1]:.2f} |"
        )
    return "\n".join(lines)


def rule_table(benchmarks: Path) -> str:
    lines = ["| rule | wall (s) | max RSS (MB) |", "|---|---|---|"]
    for path in sorted(benchmarks.rglob("*.tsv")):
        record = pd.read_csv(path, sep="\t").iloc[-1]
        lines.append(f"| {path.stem} | {record['s']:.1f} | {record['max_rss']:.0f} |")
    return "\n".join(lines)


def main(experiment_dir: str) -> None:
    experiment = Path(experiment_dir)
    scores = pd.read_csv(experiment / "evaluation" / "scores.csv")
    print(rmse_table(scores))
    beats = scores.pivot_table(
        index=["variable", "lead_time_hours"], columns="forecast", values="rmse"
    )
    wins = (beats["model"] < beats["persistence"]).groupby("lead_time_hours").sum()
    print("\nvariables where the model beats persistence, by lead time:", wins.to_dict())
    print()
    print(rule_table(experiment.parent / "benchmarks"))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results/storm")
