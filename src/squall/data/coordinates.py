"""Identity of a grid: a content hash of its coordinates, shared by datasets, graphs and models."""

from __future__ import annotations

import hashlib

import numpy as np


def coordinates_hash(latitudes: np.ndarray, longitudes: np.ndarray) -> str:
    """Hash of a grid's coordinates in degrees, stable across float32/float64 and longitude wrap.

    Coordinates are rounded to 1e-6 degrees (about 0.1 m) so that the same grid read through
    different dtypes or tools hashes the same; longitudes are folded into [0, 360).
    """
    lat = np.round(np.asarray(latitudes, dtype=np.float64), 6)
    lon = np.round(np.mod(np.asarray(longitudes, dtype=np.float64), 360.0), 6)
    if lat.shape != lon.shape or lat.ndim != 1:
        raise ValueError(
            f"latitudes and longitudes must be 1-D arrays of equal length, got {lat.shape} "
            f"and {lon.shape}"
        )
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(lat).tobytes())
    digest.update(np.ascontiguousarray(lon).tobytes())
    return digest.hexdigest()[:16]


def in_box(latitudes, longitudes, box) -> np.ndarray:
    """True for the points inside box = (south, north, west, east) in degrees, edges included.

    Longitudes are compared modulo 360, so -70 and 290 are the same meridian and a box may
    cross the antimeridian (west > east, e.g. (40, 60, 170, -170)).
    """
    south, north, west, east = (float(edge) for edge in box)
    if south > north:
        raise ValueError(f"a box is (south, north, west, east); south {south} > north {north}")
    lat = np.asarray(latitudes, dtype=np.float64)
    offset = np.mod(np.asarray(longitudes, dtype=np.float64) - west, 360.0)
    return (lat >= south) & (lat <= north) & (offset <= np.mod(east - west, 360.0))
