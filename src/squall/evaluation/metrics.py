"""Area-weighted scores, WeatherBench-style: RMSE = sqrt(mean over forecasts of weighted MSE)."""

from __future__ import annotations

import numpy as np


def latitude_weights(latitudes_deg: np.ndarray) -> np.ndarray:
    """cos(latitude) normalised to mean 1: the area of cells of a regular lat-lon grid."""
    weights = np.cos(np.deg2rad(latitudes_deg))
    return weights / weights.mean()


def weighted_rmse(forecast: np.ndarray, truth: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """forecast/truth (init, lead, point, variable) -> RMSE (lead, variable).

    Pairs whose truth is missing (NaN) are left out of the mean over initial times.
    """
    squared = (forecast - truth) ** 2
    mse = np.einsum("ilpv,p->ilv", squared, weights) / weights.sum()  # NaN where truth missing
    return np.sqrt(np.nanmean(mse, axis=0))
