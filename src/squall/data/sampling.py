"""Which dates make a sample, in which order samples come, and who reads which.

A task names its dates as offsets from an anchor (k inputs and r rollout targets one model step
apart, or interpolation targets between two inputs); an anchor is valid if every date of its
window exists and is present. Each epoch shuffles the anchors deterministically from (seed,
epoch), then deals them to data-parallel ranks round-robin (no duplicates, no gaps); the
DataLoader deals a rank's batches to its workers. The sampler is stateful, so a resumed run
continues mid-epoch at the next unseen sample.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data.distributed import DistributedSampler


def sample_offsets(input_steps: int, rollout: int, step: int) -> np.ndarray:
    """Date offsets of a sample from its last input: (-(k-1)s, ..., 0, s, ..., rs)."""
    if input_steps < 1 or rollout < 0 or step < 1:
        raise ValueError(
            f"input_steps must be >= 1, rollout >= 0 and step >= 1, got {input_steps}, "
            f"{rollout}, {step}"
        )
    return np.arange(-(input_steps - 1), rollout + 1) * step


def valid_anchors(num_dates: int, missing: set[int], offsets: Sequence[int]) -> np.ndarray:
    """Anchors t such that every date t + offset exists and is not missing (sorted).

    A window touching a missing date is dropped whole: values are never invented.
    """
    offsets = np.asarray(sorted(offsets), dtype=np.int64)
    candidates = np.arange(max(0, -offsets[0]), num_dates - max(0, offsets[-1]))
    if candidates.size == 0:
        return candidates
    is_missing = np.zeros(num_dates, dtype=bool)
    is_missing[sorted(missing)] = True
    return candidates[~is_missing[candidates[:, None] + offsets[None, :]].any(axis=1)]


def valid_sample_indices(
    num_dates: int, missing: set[int], input_steps: int, rollout: int, step: int
) -> np.ndarray:
    """Anchors (last input dates) of forecast samples: k inputs, then r targets."""
    return valid_anchors(num_dates, missing, sample_offsets(input_steps, rollout, step))


class EpochSampler(DistributedSampler):
    """Sample positions 0..n-1 for one data-parallel rank, shuffled per epoch from a seed.

    Rank r of w takes every w-th position of the epoch's order, starting at r: together the ranks
    cover each position exactly once (their counts differ by at most one). With `even`, as the
    training loader uses it under data parallelism, each rank stops at size // w so that all
    ranks take the same number of steps. A subclass of
    DistributedSampler so that Lightning uses it as it is instead of wrapping it.
    `state_dict()`/`load_state_dict()` carry (epoch, samples already consumed by this rank).
    """

    def __init__(
        self,
        size: int,
        *,
        seed: int,
        shuffle: bool,
        rank: int = 0,
        world_size: int = 1,
        even: bool = False,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside 0..{world_size - 1}")
        # Not DistributedSampler.__init__: it wants a dataset and pads or drops samples.
        self.size, self.seed, self.shuffle = int(size), int(seed), shuffle
        self.rank, self.num_replicas = rank, world_size
        # even: every rank gets size // world_size samples, so data-parallel ranks take the same
        # number of steps; the < world_size left over differ each epoch (the shuffle moves them).
        self.even = even
        self.epoch = 0
        self._resume_at = 0  # samples of this epoch consumed before a resume
        self.started_at = 0  # where the current pass over the epoch started

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self._resume_at = 0  # a restored position belongs to the epoch it was saved in
        self.epoch = int(epoch)

    def order(self) -> np.ndarray:
        """This rank's positions for the current epoch, in the order they are read."""
        if self.shuffle:
            everything = np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
        else:
            everything = np.arange(self.size)
        mine = everything[self.rank :: self.num_replicas]
        return mine[: self.size // self.num_replicas] if self.even else mine

    def __iter__(self) -> Iterator[int]:
        self.started_at, self._resume_at = self._resume_at, 0
        return iter(self.order()[self.started_at :].tolist())

    def __len__(self) -> int:
        # The whole epoch, also when resuming: Lightning counts the batches already done.
        if self.even:
            return self.size // self.num_replicas
        return len(range(self.rank, self.size, self.num_replicas))

    def state_dict(self, consumed: int, epoch: int | None = None) -> dict[str, int]:
        """The state after `consumed` samples of `epoch` (default: the current one)."""
        epoch = self.epoch if epoch is None else int(epoch)
        if consumed >= len(self):  # the epoch is done: resume at the start of the next
            epoch, consumed = epoch + 1, 0
        return {"epoch": epoch, "consumed": int(consumed), "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state.get("seed", self.seed) != self.seed:
            raise ValueError(
                f"the checkpoint's sampler used seed {state['seed']}, this run {self.seed}: "
                "resume with the same training.seed"
            )
        self.epoch, self._resume_at = int(state["epoch"]), int(state["consumed"])
