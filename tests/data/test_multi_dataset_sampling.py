"""Samples of several datasets at once, on the real storm sample: a fine grid and the same data
thinned to a coarse grid, with their own date ranges."""

from __future__ import annotations

import numpy as np
import pytest
from storm_sample import TRAIN

from squall.data.multi_datamodule import MultiDatasetSamples, common_anchors
from squall.data.sampling import sample_offsets
from squall.data.store import open_dataset

SIX_HOURS = np.timedelta64(6, "h")


def _datasets(storm, coarse_extra=None):
    coarse = {"dataset": str(storm), "thinning": 2, **(coarse_extra or {})}
    return {
        "coarse": {"dataset": coarse, "variables": ["msl", "t_surface"]},
        "fine": {"dataset": str(storm), "variables": ["t_surface"]},
    }


def _anchor_dates(samples: MultiDatasetSamples, name: str) -> np.ndarray:
    part = samples.samples[name]
    return part.store.dates[part.indices]


def test_sampling_intersects_the_valid_dates(storm_inputs):
    """The coarse dataset starts a day later and ends two days earlier: samples use the dates
    both have, skip windows touching a date missing in either, and pair the same dates."""
    storm = storm_inputs["dataset"]
    offsets = sample_offsets(2, 1, 1)  # t-6h, t, t+6h
    samples = MultiDatasetSamples(
        _datasets(storm, {"start": "1996-01-06T00", "end": "1996-01-14T18"}), *TRAIN, offsets
    )
    coarse, fine = _anchor_dates(samples, "coarse"), _anchor_dates(samples, "fine")
    np.testing.assert_array_equal(coarse, fine)

    full = open_dataset(storm)
    missing = set(full.dates[sorted(full.missing)].astype("datetime64[s]").tolist())
    expected = [
        anchor
        for anchor in full.dates.astype("datetime64[s]")
        if anchor - SIX_HOURS >= np.datetime64("1996-01-06T00")
        and anchor + SIX_HOURS <= np.datetime64("1996-01-14T18")
        and not {(anchor + k * SIX_HOURS).tolist() for k in (-1, 0, 1)} & missing
    ]
    assert missing  # the sample really has missing dates to skip
    np.testing.assert_array_equal(fine.astype("datetime64[s]"), np.array(expected))

    batch = samples.__getitems__([0, len(samples) - 1])
    assert batch["data"]["coarse"].shape == (2, 3, 1, 187, 2)
    assert batch["data"]["fine"].shape == (2, 3, 1, 726, 1)
    first = np.datetime64(int(batch["time"][0, 1]), "s")
    assert first == expected[0]


def test_each_grid_holds_the_same_dates(storm_inputs):
    """The thinned grid's values are the fine grid's at every other row and column, date for
    date: the datasets are read at the same times."""
    samples = MultiDatasetSamples(_datasets(storm_inputs["dataset"]), *TRAIN, np.array([0]))
    batch = samples.__getitems__([3, 10])
    coarse = batch["data"]["coarse"][..., 1].contiguous()  # t_surface
    fine = batch["data"]["fine"][..., 0].reshape(2, 1, 1, 33, 22)
    np.testing.assert_array_equal(coarse.numpy(), fine[..., ::2, ::2].reshape(2, 1, 1, -1).numpy())


def test_datasets_with_other_timesteps_are_refused(storm_inputs):
    datasets = _datasets(storm_inputs["dataset"], {"frequency": "12h"})
    with pytest.raises(ValueError, match="share one timestep.*coarse: 12h, fine: 6h"):
        MultiDatasetSamples(datasets, *TRAIN, sample_offsets(1, 1, 1))


def test_datasets_without_common_dates_are_refused(storm_inputs):
    storm = str(storm_inputs["dataset"])
    stores = {
        "early": open_dataset(storm, end="1996-01-08T18"),
        "late": open_dataset(storm, start="1996-01-10T00"),
    }
    with pytest.raises(ValueError, match="no date in common.*early: 1996-01-05"):
        common_anchors(stores, np.array([0]))
