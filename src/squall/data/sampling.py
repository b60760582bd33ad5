"""Which dates make a sample: k input states and r targets, one model step apart, none missing."""

from __future__ import annotations

import numpy as np


def sample_offsets(input_steps: int, rollout: int, step: int) -> np.ndarray:
    """Date offsets of a sample from its last input: (-(k-1)s, ..., 0, s, ..., rs)."""
    return np.arange(-(input_steps - 1), rollout + 1) * step


def valid_sample_indices(
    num_dates: int, missing: set[int], input_steps: int, rollout: int, step: int
) -> np.ndarray:
    """Indices t of the last input date such that every date of the sample exists and is present.

    A sample touching a missing date is dropped whole: values are never invented.
    """
    offsets = sample_offsets(input_steps, rollout, step)
    candidates = np.arange(-offsets[0], num_dates - offsets[-1])
    if candidates.size == 0:
        return candidates
    members = candidates[:, None] + offsets[None, :]
    is_missing = np.zeros(num_dates, dtype=bool)
    is_missing[list(missing)] = True
    return candidates[~is_missing[members].any(axis=1)]
