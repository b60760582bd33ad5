"""Linear interpolation from one grid to another as a fixed sparse operator (a few weights per
target point), for models whose output starts from an interpolated input (the downscaler).

A regular lat-lon source grid (a row-major product of a latitude and a longitude axis)
interpolates bilinearly, with linear extrapolation beyond its edge cells (as scipy's
RegularGridInterpolator with fill_value=None, the downscaling evaluation's baseline). Other
grids use barycentric weights in the Delaunay triangulation of the source points in (longitude,
latitude) degrees; target points outside its hull take their nearest source point
(great-circle). Both are planar in degrees: suited to regional grids, not wrapped at the
dateline.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import Delaunay, cKDTree


def _unit_vectors(latlon_rad: np.ndarray) -> np.ndarray:
    lat, lon = latlon_rad[:, 0], latlon_rad[:, 1]
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], -1)


def regular_axes(latitudes: np.ndarray, longitudes: np.ndarray) -> tuple | None:
    """(latitude axis, longitude axis) when the points are a row-major product grid, else None."""
    changes = np.flatnonzero(latitudes != latitudes[0])
    columns = int(changes[0]) if len(changes) else len(latitudes)
    if columns < 2 or len(latitudes) % columns or len(latitudes) // columns < 2:
        return None
    lat = latitudes.reshape(-1, columns)
    lon = longitudes.reshape(-1, columns)
    if not (np.all(lat == lat[:, :1]) and np.all(lon == lon[:1])):
        return None
    axes = (lat[:, 0], lon[0])
    if not all(np.all(np.diff(a) > 0) or np.all(np.diff(a) < 0) for a in axes):
        return None
    return axes


def _cells(axis: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the cell [i, i+1] of a monotonic axis holding each value (the edge cell beyond
    the axis) and the fraction of the way from axis[i] to axis[i+1] (outside 0..1 beyond)."""
    if axis[0] > axis[-1]:
        low, fraction = _cells(axis[::-1], values)
        return len(axis) - 2 - low, 1 - fraction
    low = np.clip(np.searchsorted(axis, values) - 1, 0, len(axis) - 2)
    return low, (values - axis[low]) / (axis[low + 1] - axis[low])


def _bilinear(axes: tuple, target_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    (row, a), (column, b) = _cells(axes[0], target_deg[:, 0]), _cells(axes[1], target_deg[:, 1])
    columns = len(axes[1])
    corner = row * columns + column
    index = np.stack([corner, corner + 1, corner + columns, corner + columns + 1], axis=1)
    weights = np.stack([(1 - a) * (1 - b), (1 - a) * b, a * (1 - b), a * b], axis=1)
    return index, weights


def linear_weights(
    source_latlon_rad: np.ndarray, target_latlon_rad: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """(index (targets, k) long, weights (targets, k) float32): target = sum_k w_k source[i_k];
    k = 4 (bilinear) on a regular source grid, 3 (triangles) otherwise."""
    source = np.asarray(source_latlon_rad, dtype=np.float64)
    target = np.asarray(target_latlon_rad, dtype=np.float64)
    source_deg, target_deg = np.rad2deg(source), np.rad2deg(target)
    # float32 graph coordinates: round so that a grid's rows compare equal
    axes = regular_axes(np.round(source_deg[:, 0], 6), np.round(source_deg[:, 1], 6))
    if axes is not None:
        index, weights = _bilinear(axes, target_deg)
        return torch.from_numpy(index), torch.from_numpy(weights.astype(np.float32))
    planar_source, planar_target = source_deg[:, ::-1], target_deg[:, ::-1]
    triangulation = Delaunay(planar_source)
    simplex = triangulation.find_simplex(planar_target)
    inside = simplex >= 0
    index = np.zeros((len(target), 3), dtype=np.int64)
    weights = np.zeros((len(target), 3), dtype=np.float64)
    transform = triangulation.transform[simplex[inside]]  # (n, 3, 2): inverse and offset
    partial = np.einsum("nij,nj->ni", transform[:, :2], planar_target[inside] - transform[:, 2])
    weights[inside] = np.concatenate([partial, 1 - partial.sum(axis=1, keepdims=True)], axis=1)
    index[inside] = triangulation.simplices[simplex[inside]]
    if (~inside).any():
        _, nearest = cKDTree(_unit_vectors(source)).query(_unit_vectors(target[~inside]))
        index[~inside, 0], weights[~inside, 0] = nearest, 1.0
    return torch.from_numpy(index), torch.from_numpy(weights.astype(np.float32))


def interpolate(values: torch.Tensor, index: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """values (..., source points, channels) -> (..., target points, channels)."""
    gathered = values[..., index, :]  # (..., targets, 3, channels)
    return (gathered * weights[..., None].to(values.dtype)).sum(dim=-2)
