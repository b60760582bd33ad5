"""Figures of an evaluation: scores against lead time, a scorecard, maps, spectra, ranks.

Every figure has a title, units and a legend, and renders offline (no map downloads).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on clusters
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from squall.evaluation.metrics import rank_histogram  # noqa: E402
from squall.evaluation.scores import improvement_over  # noqa: E402
from squall.evaluation.spectra import zonal_power_spectrum  # noqa: E402

METRIC_LABELS = {
    "rmse": "RMSE",
    "mae": "MAE",
    "bias": "bias",
    "acc": "anomaly correlation",
    "crps": "fair CRPS",
    "spread_skill": "spread / skill",
}
UNITLESS = {"acc", "spread_skill"}


def _panels(count: int, width: float = 4.2, height: float = 3.2):
    columns = min(3, count)
    rows = int(np.ceil(count / columns))
    figure, axes = plt.subplots(
        rows, columns, figsize=(width * columns, height * rows), squeeze=False
    )
    for axis in list(axes.flat)[count:]:
        axis.set_visible(False)
    return figure, list(axes.flat)[:count]


def _save(figure, path: str | Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)


def plot_metric_by_lead(scores: pd.DataFrame, metric: str, path: str | Path) -> Path:
    subset = scores[scores.metric == metric]
    variables = list(dict.fromkeys(subset["variable"]))
    figure, axes = _panels(len(variables))
    for axis, variable in zip(axes, variables, strict=True):
        rows = subset[subset.variable == variable]
        for name, group in rows.groupby("forecast", sort=False):
            if group["value"].notna().any():
                axis.plot(group["lead_time_hours"], group["value"], marker="o", label=name)
        units = "" if metric in UNITLESS else f" ({rows['units'].iloc[0]})"
        axis.set_title(variable)
        axis.set_xlabel("lead time (h)")
        axis.set_ylabel(f"{METRIC_LABELS.get(metric, metric)}{units}")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(f"{METRIC_LABELS.get(metric, metric)} against lead time")
    return _save(figure, path)


def plot_scorecard(scores: pd.DataFrame, baselines: list[str], path: str | Path) -> Path:
    """% RMSE improvement of the model over each baseline, per variable and lead time."""
    figure, axes = plt.subplots(
        1, len(baselines), figsize=(4.5 * len(baselines), 3.8), squeeze=False
    )
    for axis, baseline in zip(axes[0], baselines, strict=True):
        table = improvement_over(scores, baseline)
        limit = max(5.0, float(np.nanmax(np.abs(table.values))))
        image = axis.imshow(table.values, cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
        axis.set_xticks(range(table.shape[1]), [f"+{h}h" for h in table.columns])
        axis.set_yticks(range(table.shape[0]), table.index)
        for (row, column), value in np.ndenumerate(table.values):
            if np.isfinite(value):
                axis.text(column, row, f"{value:+.0f}", ha="center", va="center", fontsize=8)
        axis.set_title(f"model vs {baseline}")
        axis.set_xlabel("lead time")
        figure.colorbar(image, ax=axis, label="RMSE improvement (%)")
    figure.suptitle("Scorecard: blue = model better")
    return _save(figure, path)


def plot_forecast_map(
    forecast: np.ndarray,
    truth: np.ndarray,
    latitudes: np.ndarray,
    longitudes: np.ndarray,
    field_shape: tuple[int, ...],
    title: str,
    path: str | Path,
) -> Path:
    """forecast/truth (point,): forecast, truth and error, on the grid or as scattered points."""
    lon = np.where(longitudes > 180, longitudes - 360, longitudes)
    low, high = np.nanmin([forecast, truth]), np.nanmax([forecast, truth])
    error = forecast - truth
    limit = float(np.nanmax(np.abs(error))) or 1.0
    figure, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    panels = (
        (forecast, "forecast", "viridis", low, high),
        (truth, "truth", "viridis", low, high),
        (error, "forecast - truth", "RdBu_r", -limit, limit),
    )
    gridded = len(field_shape) == 2 and np.prod(field_shape) == len(latitudes)
    for axis, (field, name, cmap, vmin, vmax) in zip(axes, panels, strict=True):
        if gridded:
            image = axis.pcolormesh(
                lon.reshape(field_shape),
                latitudes.reshape(field_shape),
                field.reshape(field_shape),
                cmap=cmap,
                vmin=vmin,
                vmax=vmax,
                shading="auto",
            )
        else:
            image = axis.scatter(lon, latitudes, c=field, s=4, cmap=cmap, vmin=vmin, vmax=vmax)
        axis.set_title(name)
        axis.set_xlabel("longitude (deg)")
        axis.set_ylabel("latitude (deg)")
        axis.set_aspect("equal")
        figure.colorbar(image, ax=axis)
    figure.suptitle(title)
    return _save(figure, path)


def plot_note(title: str, text: str, path: str | Path) -> Path:
    """A figure that says why a plot could not be drawn (the pipeline expects every file)."""
    figure, axis = plt.subplots(figsize=(6, 2.5))
    axis.axis("off")
    axis.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    figure.suptitle(title)
    return _save(figure, path)


def plot_spectra(
    fields: dict[str, np.ndarray],
    latitudes: np.ndarray,
    longitudes: np.ndarray,
    field_shape: tuple[int, int],
    variables: list[str],
    units: dict[str, str],
    lead_hours: list[int],
    path: str | Path,
) -> Path:
    """Zonal power spectra at the longest lead: fields name -> (init, lead, point, variable)."""
    figure, axes = _panels(len(variables))
    for v, (axis, variable) in enumerate(zip(axes, variables, strict=True)):
        for name, values in fields.items():
            wavelength, power = zonal_power_spectrum(
                values[:, -1, :, v], latitudes, longitudes, field_shape
            )
            axis.loglog(wavelength, power, marker=".", label=name)
        axis.invert_xaxis()
        axis.set_title(variable)
        axis.set_xlabel("zonal wavelength (km)")
        axis.set_ylabel(f"power (({units.get(variable, '')})^2)")
        axis.grid(alpha=0.3, which="both")
        axis.legend(fontsize=8)
    figure.suptitle(f"Zonal power spectra at +{lead_hours[-1]} h")
    return _save(figure, path)


def plot_rank_histograms(
    ensemble: np.ndarray,
    truth: np.ndarray,
    variables: list[str],
    lead_hours: list[int],
    path: str | Path,
) -> Path:
    counts = rank_histogram(ensemble, truth)[-1]  # longest lead: (variable, members + 1)
    figure, axes = _panels(len(variables))
    for axis, variable, row in zip(axes, variables, counts, strict=True):
        frequency = row / max(1, row.sum())
        axis.bar(np.arange(len(row)), frequency, label="observed")
        axis.axhline(1 / len(row), color="k", linestyle="--", label="flat (reliable)")
        axis.set_title(variable)
        axis.set_xlabel("rank of the truth among the members")
        axis.set_ylabel("frequency")
        axis.legend(fontsize=8)
    figure.suptitle(f"Rank histograms at +{lead_hours[-1]} h")
    return _save(figure, path)
