import numpy as np

from squall.data.sampling import sample_offsets, valid_sample_indices


def test_offsets_cover_inputs_and_targets():
    assert sample_offsets(2, 1, 1).tolist() == [-1, 0, 1]
    assert sample_offsets(2, 3, 2).tolist() == [-2, 0, 2, 4, 6]


def test_samples_touching_a_missing_date_are_dropped():
    indices = valid_sample_indices(10, {4}, input_steps=2, rollout=1, step=1)
    # last-input indices 1..8 exist; those whose window (t-1, t, t+1) contains 4 are 3, 4, 5
    assert indices.tolist() == [1, 2, 6, 7, 8]


def test_no_sample_fits():
    assert valid_sample_indices(2, set(), 2, 1, 1).size == 0
    assert isinstance(valid_sample_indices(2, set(), 2, 1, 1), np.ndarray)
