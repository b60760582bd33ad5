"""The downscaling baselines on the real storm grids: the coarse grid is the fine one thinned by
2, so bilinear interpolation of a field linear in latitude and longitude is exact on the fine
grid (also past the coarse grid's last column, extrapolated), and nearest neighbour is exact at
the coarse points."""

from __future__ import annotations

import numpy as np

from squall.data.store import open_dataset
from squall.evaluation.downscaling import CoarseToFine


def test_interpolation_of_the_thinned_storm_grid(storm_inputs):
    fine = open_dataset(storm_inputs["dataset"])
    coarse = open_dataset(storm_inputs["dataset"], thinning=2)
    assert tuple(coarse.field_shape) == (17, 11) and tuple(fine.field_shape) == (33, 22)
    interpolation = CoarseToFine(coarse, fine)

    def plane(lat, lon):
        return 3.0 * lat - 0.5 * lon + 7.0

    coarse_field = plane(coarse.latitudes, coarse.longitudes)[None]  # (1, coarse points)
    truth = plane(fine.latitudes, fine.longitudes)[None]
    np.testing.assert_allclose(interpolation.bilinear(coarse_field), truth, rtol=1e-10)

    nearest = interpolation.nearest(coarse_field).reshape(33, 22)
    np.testing.assert_allclose(nearest[::2, ::2], truth.reshape(33, 22)[::2, ::2])
    assert not np.allclose(nearest, truth.reshape(33, 22))  # elsewhere it is not exact
