"""Area weights for scores: cos(latitude) on regular grids, the model graph's weights otherwise."""

from __future__ import annotations

import numpy as np


def is_regular_latlon(latitudes: np.ndarray, longitudes: np.ndarray, field_shape) -> bool:
    """True when the points are a (lat, lon) product grid, row-major, with even spacing."""
    shape = tuple(field_shape or ())
    if len(shape) != 2 or shape[0] * shape[1] != len(latitudes):
        return False
    lat, lon = latitudes.reshape(shape), longitudes.reshape(shape)
    rows_constant = np.allclose(lat, lat[:, :1]) and np.allclose(lon, lon[:1, :])
    if not rows_constant:
        return False
    return bool(
        np.allclose(np.diff(lat[:, 0]), np.diff(lat[:, 0])[0])
        and np.allclose(np.diff(lon[0]), np.diff(lon[0])[0])
    )


def latitude_weights(latitudes_deg: np.ndarray) -> np.ndarray:
    """cos(latitude), mean 1. On an evenly spaced grid a cell's area is proportional to
    sin(lat + d/2) - sin(lat - d/2) = 2 cos(lat) sin(d/2): exactly proportional to cos(lat)."""
    weights = np.cos(np.deg2rad(latitudes_deg))
    return weights / weights.mean()


def area_weights(
    latitudes: np.ndarray,
    longitudes: np.ndarray,
    field_shape,
    graph_weights: np.ndarray | None = None,
) -> tuple[np.ndarray, str]:
    """Weights (mean 1) and the name of the rule used, for the report."""
    if is_regular_latlon(latitudes, longitudes, field_shape):
        return latitude_weights(latitudes), "cos(latitude) of a regular lat-lon grid"
    if graph_weights is None:
        raise ValueError(
            "the grid is not a regular lat-lon grid and the forecasts carry no area weights: "
            "predict with `squall predict` (it stores the model graph's weights)"
        )
    weights = np.asarray(graph_weights, dtype=np.float64)
    return weights / weights.mean(), "the model graph's node area weights"
