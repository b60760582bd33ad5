"""The issue-12 bar: CRPS of the ensemble forecaster against the deterministic forecaster and
persistence, per variable and lead, with the spread/skill ratios, from the pipeline's scores.

The CRPS of a one-member forecast is its absolute error, so the deterministic model's and
persistence's CRPS are their MAE in scores.csv; the ensemble's is the fair CRPS.

Usage: python benchmarks/probabilistic_scores.py [results]   (markdown to stdout; reads
results/storm_ensemble, results/storm and, if present, results/storm_diffusion)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

LEADS = (6, 12, 18, 24)


def _metric(scores: pd.DataFrame, forecast: str, metric: str) -> pd.Series:
    rows = scores[(scores.forecast == forecast) & (scores.metric == metric)]
    rows = rows[rows.lead_time_hours.isin(LEADS)]
    return rows.set_index(["variable", "lead_time_hours"]).value


def bar_table(results: Path) -> pd.DataFrame:
    ensemble = pd.read_csv(results / "storm_ensemble/evaluation/scores.csv")
    deterministic = pd.read_csv(results / "storm/evaluation/scores.csv")
    columns = {
        "units": ensemble[ensemble.metric == "crps"]
        .set_index(["variable", "lead_time_hours"])
        .units,
        "ensemble CRPS": _metric(ensemble, "model", "crps"),
        "deterministic CRPS": _metric(deterministic, "model", "mae"),
        "persistence CRPS": _metric(ensemble, "persistence", "mae"),
        "ensemble spread/skill": _metric(ensemble, "model", "spread_skill"),
    }
    diffusion_scores = results / "storm_diffusion/evaluation/scores.csv"
    if diffusion_scores.is_file():
        diffusion = pd.read_csv(diffusion_scores)
        columns["diffusion CRPS"] = _metric(diffusion, "model", "crps")
        columns["diffusion spread/skill"] = _metric(diffusion, "model", "spread_skill")
    table = pd.DataFrame(columns).dropna(subset=["ensemble CRPS"])
    table["beats both"] = (table["ensemble CRPS"] < table["deterministic CRPS"]) & (
        table["ensemble CRPS"] < table["persistence CRPS"]
    )
    return table.loc[table.index.get_level_values(1).isin(LEADS)].sort_index()


def _cell(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    return f"{value:.3g}"


def markdown(table: pd.DataFrame) -> str:
    header = ["variable", "lead (h)", *table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for (variable, lead), row in table.iterrows():
        cells = [_cell(value) for value in row]
        lines.append(f"| {variable} | {lead} | " + " | ".join(cells) + " |")
    wins = int(table["beats both"].sum())
    lines.append("")
    lines.append(
        f"The ensemble's fair CRPS beats both the deterministic model and persistence in "
        f"{wins} of {len(table)} (variable, lead) pairs at +6 h to +24 h; mean spread/skill "
        f"{table['ensemble spread/skill'].mean():.2f}."
    )
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    results = Path(argv[1]) if len(argv) > 1 else Path("results")
    for name in ("storm_ensemble", "storm"):
        if not (results / name / "evaluation/scores.csv").is_file():
            sys.exit(
                f"{results / name / 'evaluation/scores.csv'} is missing: build it with "
                f"snakemake --profile profiles/local {results / name}/evaluation/scores.csv"
            )
    print(markdown(bar_table(results)))


if __name__ == "__main__":
    main(sys.argv)
