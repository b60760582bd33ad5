"""Score forecasts (a zarr from `squall predict`) against the truth, with baselines, and plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from squall.data.store import Dataset, open_dataset
from squall.evaluation import plots
from squall.evaluation.area import area_weights, is_regular_latlon
from squall.evaluation.baselines import climatology_forecast, fit_climatology, persistence
from squall.evaluation.interpolation import TASK as INTERPOLATION
from squall.evaluation.interpolation import interpolation_baselines
from squall.evaluation.reconstruction import TASK as RECONSTRUCTION
from squall.evaluation.reconstruction import latent_rows, reconstruction_baselines
from squall.evaluation.scores import score_table, write_scores

FORECASTER = "forecaster"
# Tasks without a rollout: their references beside the climatology (forecasts.attrs["task"]).
TASK_BASELINES = {
    INTERPOLATION: interpolation_baselines,
    RECONSTRUCTION: reconstruction_baselines,
}


def _fields(store: Dataset, indices: np.ndarray, columns: list[int]) -> np.ndarray:
    """(n, point, variable) of member 0 at date indices; NaN outside the store."""
    out = np.full((len(indices), len(store.latitudes), len(columns)), np.nan, dtype=np.float32)
    inside = (indices >= 0) & (indices < len(store))
    if inside.any():
        values = store.read(indices[inside].tolist(), allow_missing=True)  # (n, V, E, G)
        out[inside] = values[:, columns, 0, :].transpose(0, 2, 1)
    return out


def _date_indices(store: Dataset, dates: np.ndarray) -> np.ndarray:
    """Index of each date in the store; -1 where the store does not have it."""
    dates = dates.astype("datetime64[s]")
    found = np.clip(np.searchsorted(store.dates, dates), 0, len(store) - 1)
    return np.where(store.dates[found] == dates, found, -1)


def _baseline_forecast(path: str | Path, reference: xr.Dataset) -> np.ndarray:
    """Another forecast zarr on the same grid, aligned on the reference's init and lead times."""
    other = xr.open_zarr(path)
    if other.attrs.get("coordinates_hash") != reference.attrs.get("coordinates_hash"):
        raise ValueError(f"the baseline {path} is on another grid than the forecasts")
    aligned = other.forecast.reindex(
        init_time=reference.init_time,
        lead_time=reference.lead_time,
        variable=reference.variable,
    )
    return aligned.transpose("init_time", "lead_time", "member", "point", "variable").values


def evaluate(
    forecasts_path: str | Path,
    truth_path: str | Path,
    climatology_window: tuple[str, str],
    out_dir: str | Path,
    baselines: dict[str, str | Path] | None = None,
) -> pd.DataFrame:
    out_dir = Path(out_dir)
    (out_dir / "plots").mkdir(parents=True, exist_ok=True)
    forecasts = xr.open_zarr(forecasts_path)
    store = open_dataset(truth_path)
    if forecasts.attrs.get("coordinates_hash") not in (None, store.coordinates_hash):
        raise ValueError(
            f"{forecasts_path} is on the grid {forecasts.attrs['coordinates_hash']} but the "
            f"truth {truth_path} has the grid {store.coordinates_hash}"
        )
    variables = [str(v) for v in forecasts.variable.values]
    absent = [v for v in variables if v not in store.name_to_index]
    if absent:
        raise ValueError(f"the truth {truth_path} has no {absent}")
    columns = [store.name_to_index[v] for v in variables]
    inits = forecasts.init_time.values
    leads = forecasts.lead_time.values
    lead_hours = [int(lead / np.timedelta64(1, "h")) for lead in leads]
    valid_dates = inits[:, None] + leads[None, :]
    valid_index = _date_indices(store, valid_dates.ravel())
    truth = _fields(store, valid_index, columns).reshape(
        len(inits), len(leads), len(store.latitudes), len(variables)
    )
    initial = _fields(store, _date_indices(store, inits), columns)
    training = open_dataset(truth_path, *climatology_window)
    first = int(np.searchsorted(store.dates, training.dates[0]))
    climatology = climatology_forecast(
        fit_climatology(
            _fields(store, np.arange(first, first + len(training)), columns), training.dates
        ),
        valid_dates,
    )
    candidates = {
        "model": forecasts.forecast.transpose(
            "init_time", "lead_time", "member", "point", "variable"
        ).values
    }
    task = forecasts.attrs.get("task", FORECASTER)
    if task == FORECASTER:
        candidates["persistence"] = persistence(initial, len(leads))[:, :, None]
    else:  # an interpolator's or autoencoder's own references, from the true states
        candidates |= TASK_BASELINES[task](
            forecasts, lambda dates: _fields(store, _date_indices(store, dates), columns)
        )
    candidates["climatology"] = climatology[:, :, None]
    for name, path in (baselines or {}).items():
        candidates[name] = _baseline_forecast(path, forecasts)

    graph_weights = forecasts.area_weight.values if "area_weight" in forecasts.coords else None
    weights, weighting = area_weights(
        store.latitudes, store.longitudes, store.field_shape, graph_weights
    )
    if "forced" in forecasts.coords:  # the boundary was overwritten with the truth: unscored
        weights = np.where(forecasts.forced.values, 0.0, weights)
        weighting += ", inside the domain only (forced boundary points left out)"
    units = forecasts.attrs.get("units", {})
    scores = score_table(candidates, truth, climatology, weights, variables, units, lead_hours)
    if task == RECONSTRUCTION:
        scores = pd.concat([scores, latent_rows(forecasts)], ignore_index=True)
    scores.attrs["area_weights"] = weighting
    write_scores(scores, out_dir)

    figures = out_dir / "plots"
    plots.plot_metric_by_lead(scores, "rmse", figures / "rmse_by_lead.png")
    plots.plot_metric_by_lead(scores, "acc", figures / "acc_by_lead.png")
    plots.plot_scorecard(scores, [n for n in candidates if n != "model"], figures / "scorecard.png")
    field_shape = tuple(store.field_shape)
    model_mean = np.nanmean(candidates["model"], axis=2)
    plots.plot_forecast_map(
        model_mean[0, -1, :, 0],
        truth[0, -1, :, 0],
        store.latitudes,
        store.longitudes,
        field_shape,
        f"{variables[0]} ({units.get(variables[0], '')}), init "
        f"{str(inits[0])[:16]}, +{lead_hours[-1]} h",
        figures / "forecast_map.png",
    )
    reference = next(name for name in candidates if name != "model")  # persistence, linear
    if is_regular_latlon(store.latitudes, store.longitudes, field_shape):
        plots.plot_spectra(
            {
                "truth": truth,
                "model": model_mean,
                reference: candidates[reference][:, :, 0],
            },
            store.latitudes,
            store.longitudes,
            field_shape,
            variables,
            units,
            lead_hours,
            figures / "spectra.png",
        )
    else:  # e.g. a cut-out grid: regional points, then the outer ones
        plots.plot_note(
            "Zonal power spectra",
            f"not drawn: they need a regular lat-lon grid, and this one ({len(store.latitudes)} "
            f"points, field shape {list(field_shape)}) is not",
            figures / "spectra.png",
        )
    if candidates["model"].shape[2] > 1:
        plots.plot_rank_histograms(
            candidates["model"], truth, variables, lead_hours, figures / "rank_histograms.png"
        )
    return scores


def evaluate_to_dir(forecasts_path, truth_path, climatology_window, out_dir, baselines=None):
    """`squall evaluate`: the scores table (pivoted for printing)."""
    scores = evaluate(forecasts_path, truth_path, climatology_window, out_dir, baselines)
    rmse = scores[scores.metric == "rmse"]
    return rmse.pivot_table(
        index=["variable", "lead_time_hours"], columns="forecast", values="value", sort=False
    )
