"""Shared fixtures: the storm-like regional grid of the embedded sample (North America)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def storm_grid() -> tuple[np.ndarray, np.ndarray]:
    """Flattened 33 x 22 regular grid, 20-60N and 122.5W-70W, 1.25 x 2.5 degrees."""
    latitudes = np.arange(20, 60.01, 1.25)
    longitudes = np.arange(-122.5, -69.9, 2.5)
    lat2d, lon2d = np.meshgrid(latitudes, longitudes, indexing="ij")
    return lat2d.ravel(), lon2d.ravel()
