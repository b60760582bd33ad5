"""Geometry on the unit sphere: lat/lon <-> unit vectors, km <-> chord, lat/lon sort order.

All angles are in radians. Distances between nodes are measured on the unit sphere; the Earth
radius below only converts user-facing kilometres into angles.
"""

from __future__ import annotations

import numpy as np

EARTH_RADIUS_KM = 6371.0

# Latitudes are rounded before sorting so that nodes of one ring (equal latitude up to float
# noise) are ordered by longitude deterministically on every machine.
_SORT_DECIMALS = 10


def latlon_to_xyz(lat_rad: np.ndarray, lon_rad: np.ndarray) -> np.ndarray:
    """Unit vectors (N, 3) of points given by latitude and longitude in radians."""
    lat = np.asarray(lat_rad, dtype=np.float64)
    lon = np.asarray(lon_rad, dtype=np.float64)
    cos_lat = np.cos(lat)
    return np.stack([cos_lat * np.cos(lon), cos_lat * np.sin(lon), np.sin(lat)], axis=-1)


def xyz_to_latlon(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Latitude and longitude in radians (longitude in [-pi, pi]) of vectors (N, 3)."""
    xyz = np.asarray(xyz, dtype=np.float64)
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    # arctan2 on both angles stays accurate near the poles, where arcsin(z) loses precision.
    lat = np.arctan2(z, np.hypot(x, y))
    lon = np.arctan2(y, x)
    return lat, lon


def km_to_chord(distance_km: float) -> float:
    """Straight-line distance on the unit sphere of a great-circle distance in km."""
    arc = min(float(distance_km) / EARTH_RADIUS_KM, np.pi)
    return 2.0 * np.sin(arc / 2.0)


def chord_to_km(chord: np.ndarray | float) -> np.ndarray | float:
    """Great-circle distance in km of a straight-line distance on the unit sphere."""
    return 2.0 * np.arcsin(np.clip(np.asarray(chord) / 2.0, 0.0, 1.0)) * EARTH_RADIUS_KM


def latlon_order(lat_rad: np.ndarray, lon_rad: np.ndarray) -> np.ndarray:
    """Permutation sorting points by latitude, then longitude in [-pi, pi).

    Contiguous index ranges of the sorted nodes are latitude bands: spatially compact, which
    keeps sharding and windowed attention cheap.
    """
    lon = np.mod(np.asarray(lon_rad, dtype=np.float64) + np.pi, 2 * np.pi) - np.pi
    lat = np.asarray(lat_rad, dtype=np.float64)
    return np.lexsort((np.round(lon, _SORT_DECIMALS), np.round(lat, _SORT_DECIMALS)))
