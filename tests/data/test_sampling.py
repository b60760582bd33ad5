"""Anchors arithmetic, the per-epoch shuffle, the rank/worker split and mid-epoch resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from squall.data.datamodule import ForecastSamples, ResumableDataLoader, grid_shard
from squall.data.sampling import EpochSampler, sample_offsets, valid_anchors, valid_sample_indices
from squall.data.store_write import write_dataset


def test_offsets_cover_inputs_and_targets():
    assert sample_offsets(2, 1, 1).tolist() == [-1, 0, 1]
    assert sample_offsets(2, 3, 2).tolist() == [-2, 0, 2, 4, 6]
    with pytest.raises(ValueError, match="input_steps must be >= 1"):
        sample_offsets(0, 1, 1)


def test_samples_touching_a_missing_date_are_dropped():
    indices = valid_sample_indices(10, {4}, input_steps=2, rollout=1, step=1)
    # last-input indices 1..8 exist; those whose window (t-1, t, t+1) contains 4 are 3, 4, 5
    assert indices.tolist() == [1, 2, 6, 7, 8]


def test_anchors_for_any_offsets():
    # Interpolation: inputs at t and t+6, targets between: anchors t = 0..3 of 10 dates.
    assert valid_anchors(10, set(), [0, 2, 4, 6]).tolist() == [0, 1, 2, 3]
    # A missing date at 5 removes every window that contains it, and only those.
    assert valid_anchors(10, {5}, [0, 2, 4, 6]).tolist() == [0, 2]
    # Two inputs 2 steps apart (12 h at 6-hourly data) and a 4-step rollout.
    anchors = valid_anchors(20, {0}, sample_offsets(2, 4, 2))
    assert anchors.tolist() == list(range(3, 12))


def test_no_sample_fits():
    assert valid_sample_indices(2, set(), 2, 1, 1).size == 0
    assert isinstance(valid_sample_indices(2, set(), 2, 1, 1), np.ndarray)


def test_shuffle_is_deterministic_per_epoch_and_seed():
    sampler = EpochSampler(50, seed=3, shuffle=True)
    first = list(sampler)
    assert sorted(first) == list(range(50)) and first != list(range(50))
    assert list(EpochSampler(50, seed=3, shuffle=True)) == first  # same seed, same order
    sampler.set_epoch(1)
    assert list(sampler) != first and sorted(sampler) == list(range(50))
    assert list(EpochSampler(50, seed=4, shuffle=True)) != first
    assert list(EpochSampler(5, seed=3, shuffle=False)) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("size", [48, 49, 50, 7])
def test_ranks_share_an_epoch_without_duplicates_or_gaps(size):
    parts = []
    for rank in range(4):
        sampler = EpochSampler(size, seed=1, shuffle=True, rank=rank, world_size=4)
        sampler.set_epoch(2)
        parts.append(list(sampler))
        assert len(sampler) == len(parts[-1])
    flat = [p for part in parts for p in part]
    assert sorted(flat) == list(range(size))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    even = [
        EpochSampler(size, seed=1, shuffle=True, rank=r, world_size=4, even=True) for r in range(4)
    ]
    taken = [list(sampler) for sampler in even]
    assert {len(part) for part in taken} == {size // 4} == {len(sampler) for sampler in even}
    assert len({p for part in taken for p in part}) == size // 4 * 4  # still no duplicates
    with pytest.raises(ValueError, match="rank 4 is outside 0..3"):
        EpochSampler(size, seed=1, shuffle=True, rank=4, world_size=4)


def test_sampler_resumes_at_the_next_unseen_sample():
    sampler = EpochSampler(30, seed=7, shuffle=True, rank=1, world_size=2)
    sampler.set_epoch(3)
    full = list(sampler)
    state = sampler.state_dict(consumed=6)
    resumed = EpochSampler(30, seed=7, shuffle=True, rank=1, world_size=2)
    resumed.load_state_dict(state)
    resumed.set_epoch(3)  # Lightning sets the epoch again before iterating
    assert list(resumed) == full[6:]
    assert list(resumed) == full  # the next pass is a whole epoch again
    # A finished epoch resumes at the start of the next one.
    assert sampler.state_dict(consumed=len(full)) == {"epoch": 4, "consumed": 0, "seed": 7}
    with pytest.raises(ValueError, match="same training.seed"):
        EpochSampler(30, seed=8, shuffle=True).load_state_dict(state)


@pytest.fixture(scope="module")
def counting_store(tmp_path_factory):
    """Synthetic: each value is its date index, so a sample shows which dates it read."""
    dates = np.arange("2020-01-01", "2020-01-04", np.timedelta64(6, "h"), dtype="datetime64[s]")
    data = np.broadcast_to(
        np.arange(len(dates), dtype=np.float32)[:, None, None, None], (12, 3, 1, 10)
    )
    data = data + np.arange(10, dtype=np.float32) / 100  # and the point index in the decimals
    return write_dataset(
        tmp_path_factory.mktemp("sampling") / "counting.zarr",
        data=data,
        dates=dates,
        latitudes=np.linspace(-45, 45, 10),
        longitudes=np.linspace(0, 90, 10),
        variables=["a", "b", "c"],
        frequency="6h",
        field_shape=(10,),
        missing_dates=[],
    )


def test_sample_reads_its_dates_variables_and_grid_shard(counting_store):
    shard = grid_shard(10, 1, 3)
    assert shard == slice(3, 7)
    samples = ForecastSamples(str(counting_store), "2020", "2020", ["c", "a"], 2, 1, 1, shard)
    assert samples.indices.tolist() == list(range(1, 11))
    item = samples[0]
    assert item["data"].shape == (3, 1, 4, 2)  # (time, ensemble, grid shard, variables)
    np.testing.assert_allclose(item["data"][:, 0, 0, 0], [0.03, 1.03, 2.03], rtol=1e-6)
    assert (item["time"][1:] - item["time"][:-1]).tolist() == [21600, 21600]


def test_batches_through_a_join_match_single_samples(counting_store):
    spec = {"join": [str(counting_store), {"dataset": str(counting_store), "rename": {"a": "d"}}]}
    samples = ForecastSamples(spec, "2020", "2020", ["a", "b", "c", "d"], 2, 1, 1)
    batch = samples.__getitems__([0, 4])
    assert batch["data"].shape == (2, 3, 1, 10, 4)
    np.testing.assert_array_equal(batch["data"][1], samples[4]["data"])
    np.testing.assert_allclose(batch["data"][1, :, 0, 2, 3], [4.02, 5.02, 6.02], rtol=1e-6)


def test_loader_workers_and_ranks_see_each_sample_once(counting_store):
    samples = ForecastSamples(str(counting_store), "2020", "2020", ["a"], 2, 1, 1)
    seen = []
    for rank in range(2):
        sampler = EpochSampler(len(samples), seed=0, shuffle=True, rank=rank, world_size=2)
        loader = ResumableDataLoader(samples, batch_size=2, sampler=sampler, num_workers=2)
        for batch in loader:
            seen += batch["data"][:, 1, 0, 0, 0].round().to(torch.int64).tolist()  # anchors
    assert sorted(seen) == samples.indices.tolist()


def test_loader_resumes_mid_epoch(counting_store):
    samples = ForecastSamples(str(counting_store), "2020", "2020", ["a"], 2, 1, 1)

    def loader() -> ResumableDataLoader:
        sampler = EpochSampler(len(samples), seed=5, shuffle=True)
        return ResumableDataLoader(samples, batch_size=3, sampler=sampler)

    first = loader()
    everything = [batch["time"] for batch in first]
    iterator = iter(first)
    next(iterator)
    state = first.state_dict()  # after one batch of three
    resumed = loader()
    resumed.load_state_dict(state)
    rest = [batch["time"] for batch in resumed]
    assert torch.equal(torch.cat(rest), torch.cat(everything)[3:])
