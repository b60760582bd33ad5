"""Figures of an evaluation: RMSE against lead time, and a map of one forecast."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on clusters
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def plot_rmse_by_lead(scores: pd.DataFrame, path: str | Path) -> Path:
    variables = list(dict.fromkeys(scores["variable"]))
    columns = min(3, len(variables))
    rows = int(np.ceil(len(variables) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False)
    for axis, variable in zip(axes.flat, variables, strict=False):
        subset = scores[scores["variable"] == variable]
        for name, group in subset.groupby("forecast", sort=False):
            axis.plot(group["lead_time_hours"], group["rmse"], marker="o", label=name)
        axis.set_title(variable)
        axis.set_xlabel("lead time (h)")
        axis.set_ylabel(f"RMSE ({subset['units'].iloc[0]})")
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(variables) :]:
        axis.set_visible(False)
    axes.flat[0].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)


def plot_forecast_map(
    forecast: np.ndarray,
    truth: np.ndarray,
    latitudes: np.ndarray,
    longitudes: np.ndarray,
    field_shape: tuple[int, int],
    title: str,
    path: str | Path,
) -> Path:
    """forecast/truth (point,) on a regular grid of `field_shape`: forecast, truth and error."""
    lat, lon = latitudes.reshape(field_shape), longitudes.reshape(field_shape)
    lon = np.where(lon > 180, lon - 360, lon)
    fields = [forecast.reshape(field_shape), truth.reshape(field_shape)]
    low, high = np.nanmin(fields), np.nanmax(fields)
    error = fields[0] - fields[1]
    limit = np.nanmax(np.abs(error)) or 1.0
    figure, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for axis, field, name in zip(axes[:2], fields, ("forecast", "truth"), strict=True):
        mesh = axis.pcolormesh(lon, lat, field, vmin=low, vmax=high, shading="auto")
        axis.set_title(name)
        figure.colorbar(mesh, ax=axis)
    mesh = axes[2].pcolormesh(
        lon, lat, error, cmap="RdBu_r", vmin=-limit, vmax=limit, shading="auto"
    )
    axes[2].set_title("forecast - truth")
    figure.colorbar(mesh, ax=axes[2])
    for axis in axes:
        axis.set_xlabel("longitude")
        axis.set_ylabel("latitude")
        axis.set_aspect("equal")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)
