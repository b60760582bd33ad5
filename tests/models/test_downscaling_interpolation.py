"""The downscaler's starting point: a coarse grid interpolated onto a fine one
(squall.models.grid_interpolation), on the real storm grids."""

from __future__ import annotations

import numpy as np
import torch

from squall.data.store import open_dataset
from squall.evaluation.downscaling import CoarseToFine
from squall.models.grid_interpolation import interpolate, linear_weights


def _radians(dataset) -> np.ndarray:
    return np.deg2rad(np.stack([dataset.latitudes, dataset.longitudes], axis=1))


def test_regular_grid_is_bilinear_as_the_evaluation_baseline(storm_inputs):
    """On the storm grid thinned by 3 (11 x 8 points) the operator is bilinear, with linear
    extrapolation past the coarse grid's last row and column: the same values as scipy's
    RegularGridInterpolator that the downscaling evaluation scores against, for a real field."""
    fine = open_dataset(storm_inputs["dataset"])
    coarse = open_dataset(storm_inputs["dataset"], thinning=3)
    index, weights = linear_weights(_radians(coarse), _radians(fine))
    assert index.shape == (726, 4)
    field = coarse[10][1, 0].astype(np.float64)  # t_surface of one date, (coarse points,)
    ours = interpolate(torch.from_numpy(field)[:, None], index, weights.double())[:, 0]
    baseline = CoarseToFine(coarse, fine).bilinear(field[None])[0]
    np.testing.assert_allclose(ours.numpy(), baseline, rtol=1e-5)


def test_scattered_grid_uses_triangles(storm_inputs):
    """Every third point of the flattened grid is not a product grid: barycentric weights,
    exact for a plane inside the hull, the nearest point outside it."""
    fine = open_dataset(storm_inputs["dataset"])
    keep = np.arange(726) % 3 == 0
    source = _radians(fine)[keep]
    index, weights = linear_weights(source, _radians(fine))
    assert index.shape == (726, 3)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(726))

    def plane(latlon):
        return torch.from_numpy(2.0 * np.rad2deg(latlon[:, 0]) - np.rad2deg(latlon[:, 1]))

    ours = interpolate(plane(source)[:, None], index, weights.double())[:, 0].reshape(33, 22)
    truth = plane(_radians(fine)).reshape(33, 22)
    # away from the edges the fine points lie inside the triangulation
    torch.testing.assert_close(ours[1:-2, 1:-1], truth[1:-2, 1:-1])
    assert not torch.allclose(ours, truth)  # the nearest point outside it
