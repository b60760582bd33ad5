"""Every score of every forecast, as one long table (scores.csv) and a nested JSON."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from squall.evaluation import metrics

_LEVEL = re.compile(r"_(\d+)$")


def level_of(variable: str) -> int | None:
    """Pressure level of a `param_level` name (u_500 -> 500); None for single-level fields."""
    match = _LEVEL.search(variable)
    return int(match.group(1)) if match else None


def score_table(
    candidates: dict[str, np.ndarray],
    truth: np.ndarray,
    climatology: np.ndarray,
    weights: np.ndarray,
    variables: list[str],
    units: dict[str, str],
    lead_hours: list[int],
) -> pd.DataFrame:
    """candidates: name -> (init, lead, member, point, variable); truth, climatology: (init,
    lead, point, variable). Deterministic scores use the ensemble mean; ensembles also get the
    fair CRPS and the spread/skill ratio."""
    scored = (~np.isnan(truth)).any(axis=2).sum(axis=0)  # (lead, variable)
    rows = []
    for name, ensemble in candidates.items():
        mean = np.nanmean(ensemble, axis=2) if ensemble.shape[2] > 1 else ensemble[:, :, 0]
        values = {
            "rmse": metrics.rmse(mean, truth, weights),
            "bias": metrics.bias(mean, truth, weights),
            "mae": metrics.mae(mean, truth, weights),
            "acc": metrics.acc(mean, truth, climatology, weights),
        }
        if ensemble.shape[2] > 1:
            values["crps"] = metrics.fair_crps(ensemble, truth, weights)
            values["spread_skill"] = metrics.spread_skill(ensemble, truth, weights)
        for metric, table in values.items():
            for lead, hours in enumerate(lead_hours):
                for v, variable in enumerate(variables):
                    rows.append(
                        {
                            "forecast": name,
                            "variable": variable,
                            "level": level_of(variable),
                            "units": units.get(variable, ""),
                            "lead_time_hours": hours,
                            "metric": metric,
                            "value": float(table[lead, v]),
                            "forecasts_scored": int(scored[lead, v]),
                        }
                    )
    return pd.DataFrame(rows)


def improvement_over(scores: pd.DataFrame, baseline: str, metric: str = "rmse") -> pd.DataFrame:
    """% improvement of the model over a baseline: 100 (1 - model / baseline), variable x lead."""
    table = scores[scores.metric == metric].pivot_table(
        index="variable", columns=["forecast", "lead_time_hours"], values="value", sort=False
    )
    return 100 * (1 - table["model"] / table[baseline])


def write_scores(scores: pd.DataFrame, out_dir: str | Path) -> None:
    out_dir = Path(out_dir)
    nested: dict = {}
    for row in scores.itertuples(index=False):
        value = None if np.isnan(row.value) else row.value
        # several datasets (a `dataset` column) may share variable names: one level each
        top = nested.setdefault(row.dataset, {}) if "dataset" in scores.columns else nested
        leaf = top.setdefault(row.forecast, {}).setdefault(row.variable, {})
        leaf.setdefault(row.metric, {})[str(row.lead_time_hours)] = value
    for name, write in (
        ("scores.csv", lambda path: scores.to_csv(path, index=False)),
        ("scores.json", lambda path: Path(path).write_text(json.dumps(nested, indent=1))),
    ):
        temporary = out_dir / f".{name}.tmp-{os.getpid()}"
        write(temporary)
        os.replace(temporary, out_dir / name)
