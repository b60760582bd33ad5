"""Evaluate an exported model on a test period against persistence and climatology."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from squall.data.store import Dataset, open_dataset
from squall.evaluation.baselines import climatology_forecast, fit_climatology, persistence
from squall.evaluation.metrics import latitude_weights, weighted_rmse
from squall.evaluation.plots import plot_forecast_map, plot_rmse_by_lead
from squall.evaluation.predict import predict, write_zarr_atomically
from squall.export.artifact import read_metadata


def _fields(store: Dataset, indices: np.ndarray, columns: list[int]) -> np.ndarray:
    """(n, point, variable) of member 0 at date indices; NaN beyond the store's end."""
    out = np.full((len(indices), len(store.latitudes), len(columns)), np.nan, dtype=np.float32)
    inside = (indices >= 0) & (indices < len(store))
    if inside.any():
        values = store.read(indices[inside].tolist(), allow_missing=True)  # (n, V, E, G)
        out[inside] = values[:, columns, 0, :].transpose(0, 2, 1)
    return out


def evaluate(
    artifact: str | Path,
    dataset_path: str | Path,
    start: str,
    end: str,
    lead_time_hours: int,
    climatology_window: tuple[str, str],
    out_dir: str | Path,
) -> pd.DataFrame:
    out_dir = Path(out_dir)
    (out_dir / "plots").mkdir(parents=True, exist_ok=True)
    store = open_dataset(dataset_path)
    step_hours = read_metadata(artifact)["timestep_seconds"] // 3600
    if lead_time_hours % step_hours:
        raise ValueError(
            f"lead time {lead_time_hours} h is not a multiple of the model step ({step_hours} h)"
        )
    lead_steps = lead_time_hours // step_hours
    forecasts = predict(artifact, dataset_path, start, end, lead_steps=lead_steps)
    write_zarr_atomically(forecasts, out_dir / "forecasts.zarr")

    variables = [str(v) for v in forecasts.variable.values]
    columns = [store.name_to_index[v] for v in variables]
    step = int(step_hours * 3600 // store.frequency.total_seconds())
    init_index = np.searchsorted(store.dates, forecasts.init_time.values)
    valid_index = init_index[:, None] + step * np.arange(1, lead_steps + 1)[None, :]
    truth = _fields(store, valid_index.ravel(), columns).reshape(
        *valid_index.shape, len(store.latitudes), len(variables)
    )
    model = forecasts.forecast.values.mean(axis=2)  # ensemble mean (I, L, G, V)
    initial = _fields(store, init_index, columns)
    training = open_dataset(dataset_path, *climatology_window)
    train_first = int(np.searchsorted(store.dates, training.dates[0]))
    climatology = fit_climatology(
        _fields(store, np.arange(train_first, train_first + len(training)), columns),
        training.dates,
    )
    valid_dates = store.dates[np.clip(valid_index, 0, len(store) - 1)]
    candidates = {
        "model": model,
        "persistence": persistence(initial, lead_steps),
        "climatology": climatology_forecast(climatology, valid_dates),
    }
    weights = latitude_weights(store.latitudes)
    units = {
        v: store.metadata.get("variables_metadata", {}).get(v, {}).get("units", "")
        for v in variables
    }
    rows = []
    present = (~np.isnan(truth)).any(axis=2).sum(axis=0)  # (L, V) forecasts with truth
    for name, values in candidates.items():
        rmse = weighted_rmse(values, truth, weights)
        for lead in range(lead_steps):
            for v, variable in enumerate(variables):
                rows.append(
                    {
                        "forecast": name,
                        "variable": variable,
                        "units": units[variable],
                        "lead_time_hours": (lead + 1) * step_hours,
                        "rmse": float(rmse[lead, v]),
                        "forecasts_scored": int(present[lead, v]),
                    }
                )
    scores = pd.DataFrame(rows)
    temporary = out_dir / f"scores.csv.tmp-{os.getpid()}"
    scores.to_csv(temporary, index=False)
    os.replace(temporary, out_dir / "scores.csv")

    plot_rmse_by_lead(scores, out_dir / "plots" / "rmse_by_lead.png")
    variable = variables[0]
    plot_forecast_map(
        model[0, -1, :, 0],
        truth[0, -1, :, 0],
        store.latitudes,
        store.longitudes,
        tuple(store.field_shape),
        f"{variable}, init {str(forecasts.init_time.values[0])[:16]}, +{lead_time_hours} h",
        out_dir / "plots" / "forecast_map.png",
    )
    return scores
