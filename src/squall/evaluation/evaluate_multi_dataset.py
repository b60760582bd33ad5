"""Scores of a forecaster on several datasets: each output dataset's forecasts (a directory of
<dataset>.zarr from `squall predict-multi-dataset`) scored against that dataset with
squall.evaluation.evaluate (persistence and climatology baselines, plots), then one table with a
`dataset` column."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from squall.evaluation.evaluate import evaluate
from squall.evaluation.scores import write_scores


def evaluate_multi_dataset(
    forecasts_dir: str | Path,
    datasets: dict[str, Any],
    climatology_window: tuple[str, str],
    out_dir: str | Path,
) -> pd.DataFrame:
    """scores.csv / scores.json over all datasets in `out_dir`, and each dataset's own scores
    and plots in `out_dir`/datasets/<dataset>/. `datasets`: {name: path or open_dataset
    mapping}, the truth of each output dataset."""
    forecasts_dir, out_dir = Path(forecasts_dir), Path(out_dir)
    zarrs = sorted(forecasts_dir.glob("*.zarr"))
    if not zarrs:
        raise ValueError(
            f"{forecasts_dir} holds no <dataset>.zarr: make it with `squall predict-multi-dataset`"
        )
    missing = sorted({path.stem for path in zarrs} - set(datasets))
    if missing:
        raise ValueError(f"give the truth of the datasets {missing} as NAME=PATH")
    tables = []
    for path in zarrs:
        name = path.stem
        scores = evaluate(path, datasets[name], climatology_window, out_dir / "datasets" / name)
        tables.append(scores.assign(dataset=name))
    combined = pd.concat(tables, ignore_index=True)
    combined = combined[["dataset", *[c for c in combined.columns if c != "dataset"]]]
    write_scores(combined, out_dir)
    return combined


def evaluate_multi_dataset_to_dir(forecasts_dir, datasets, climatology_window, out_dir):
    """`squall evaluate-multi-dataset`: RMSE by dataset, variable and lead (for printing)."""
    scores = evaluate_multi_dataset(forecasts_dir, datasets, climatology_window, out_dir)
    rmse = scores[scores.metric == "rmse"]
    return rmse.pivot_table(
        index=["dataset", "variable", "lead_time_hours"],
        columns="forecast",
        values="value",
        sort=False,
    )
