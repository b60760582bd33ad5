"""Markdown tables of an evaluation's scores.csv and of the pipeline's per-rule benchmarks.

Usage: python benchmarks/scores_table.py results/storm   (prints markdown to stdout)
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd


def metric_table(scores: pd.DataFrame, metric: str = "rmse") -> pd.DataFrame:
    return scores[scores.metric == metric].pivot_table(
        index=["variable", "units", "lead_time_hours"],
        columns="forecast",
        values="value",
        sort=False,
    )


def rmse_markdown(scores: pd.DataFrame) -> str:
    rmse = metric_table(scores, "rmse").reset_index()
    acc = metric_table(scores, "acc").reset_index()
    lines = [
        "| variable | units | lead (h) | model | persistence | climatology | "
        "model / persistence | ACC model | ACC persistence |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (_, row), (_, correlation) in zip(rmse.iterrows(), acc.iterrows(), strict=True):
        lines.append(
            f"| {row.variable} | {row.units} | {row.lead_time_hours} | {row.model:.3g} | "
            f"{row.persistence:.3g} | {row.climatology:.3g} | "
            f"{row.model / row.persistence:.2f} | {correlation.model:.2f} | "
            f"{correlation.persistence:.2f} |"
        )
    return "\n".join(lines)


def wins(scores: pd.DataFrame, baseline: str) -> dict[int, int]:
    rmse = metric_table(scores, "rmse")
    better = rmse["model"] < rmse[baseline]
    return {int(k): int(v) for k, v in better.groupby("lead_time_hours").sum().items()}


def rule_markdown(benchmarks: Path) -> str:
    lines = ["| rule | wall (s) | max RSS (MB) |", "|---|---|---|"]
    for path in sorted(benchmarks.rglob("*.tsv")):
        record = pd.read_csv(path, sep="\t").iloc[-1]
        lines.append(f"| {path.stem} | {record['s']:.1f} | {record['max_rss']:.0f} |")
    return "\n".join(lines)


def main(experiment_dir: str) -> None:
    experiment = Path(experiment_dir)
    scores = pd.read_csv(experiment / "evaluation" / "scores.csv")
    print(rmse_markdown(scores))
    for baseline in ("persistence", "climatology"):
        print(f"\nvariables where the model beats {baseline}, by lead (h):", wins(scores, baseline))
    print()
    print(rule_markdown(experiment.parent / "benchmarks"))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results/storm")
