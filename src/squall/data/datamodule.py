"""Samples for training and validation, read lazily from an anemoi-layout store.

A sample reads only its own dates (one chunk each in squall's stores) and, for model-parallel
runs, only this rank's contiguous shard of grid points. The training loader is resumable: a
checkpoint taken mid-epoch records how many samples this rank consumed, and the resumed run
starts at the next unseen one, in the same shuffled order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from squall.data.sampling import EpochSampler, sample_offsets, valid_anchors
from squall.data.store import open_dataset

# Batch buffers per loader worker beyond the loader's prefetch_factor, reused in turn: a batch
# stays intact until its worker has made prefetch_factor + SPARE_BATCH_BUFFERS more. The loader
# keeps at most prefetch_factor batches per worker in flight, Lightning prefetches one and the
# training step holds one; a consumer that keeps batches longer than that must clone them.
SPARE_BATCH_BUFFERS = 4


def collate_batches(batch: Any) -> Any:
    """The loader's collate_fn: ForecastSamples.__getitems__ already returns a whole batch."""
    return batch if isinstance(batch, dict) else torch.utils.data.default_collate(batch)


def grid_shard(num_points: int, shard: int, shards: int) -> slice:
    """The contiguous points of shard `shard` of `shards` (sizes differ by at most one)."""
    if not 0 <= shard < shards:
        raise ValueError(f"grid shard {shard} is outside 0..{shards - 1}")
    bounds = np.linspace(0, num_points, shards + 1).round().astype(int)
    return slice(int(bounds[shard]), int(bounds[shard + 1]))


class ForecastSamples(Dataset):
    """Each item: `data` (time, ensemble, grid, variable) float32 and `time` (time,) epoch seconds.

    Times are the dates at `offsets` from each valid anchor (for a forecaster: k inputs then r
    targets). Variables are taken in `variables` order; `points` limits the grid to a shard.
    """

    def __init__(
        self,
        dataset_path: str,
        start: str,
        end: str,
        variables: list[str],
        input_steps: int,
        rollout: int,
        step: int,
        points: slice | None = None,
        offsets: list[int] | None = None,
    ) -> None:
        self.store = open_dataset(dataset_path, start=start, end=end)
        unknown = [name for name in variables if name not in self.store.name_to_index]
        if unknown:
            raise ValueError(
                f"variables {unknown} are not in the dataset {dataset_path} (it has "
                f"{self.store.variables}); fix data.forcing/diagnostic/drop in the config"
            )
        self.columns = [self.store.name_to_index[name] for name in variables]
        if self.columns == list(range(len(self.store.variables))):
            self.columns = None  # all of them, in store order: no copy needed
        self.points = points
        self.offsets = (
            np.asarray(offsets)
            if offsets is not None
            else sample_offsets(input_steps, rollout, step)
        )
        self.indices = valid_anchors(len(self.store), set(self.store.missing), self.offsets)
        if len(self.indices) == 0:
            raise ValueError(
                f"no complete sample in {start}..{end} of {dataset_path}: the window holds "
                f"{len(self.store)} dates ({len(self.store.missing)} missing) but a sample needs "
                f"the dates at offsets {self.offsets.tolist()} all present; widen the window"
            )
        self.epoch_seconds = self.store.dates.astype("datetime64[s]").astype(np.int64)
        self.batch_buffers = 2 + SPARE_BATCH_BUFFERS  # set from the loader's prefetch_factor

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        batch = self.__getitems__([item])
        return {key: value[0].contiguous() for key, value in batch.items()}

    def __getitems__(self, items: list[int]) -> dict[str, torch.Tensor]:
        """A whole batch: `data` (B, T, E, G, V) and `time` (B, T).

        Zarr decompresses each sample straight into the batch tensor, kept in the store's
        (B, T, V, E, G) memory order: `data` is a permuted view with the contract's shape, made
        contiguous on the device after transfer (ForecastDataModule.on_after_batch_transfer),
        so the loader workers never transpose. In a worker the batch tensor is one of
        `batch_buffers` shared-memory buffers reused in turn (see SPARE_BATCH_BUFFERS): a fresh
        shared buffer per batch costs more in page faults than reading the data.
        """
        dates = self.indices[np.asarray(items)][:, None] + self.offsets[None, :]
        ensembles, points, variables = self._sample_shape
        stored = self._batch_buffer((len(items), len(self.offsets), variables, ensembles, points))
        for b, sample_dates in enumerate(dates):
            if self.columns is None:
                target = stored[b].numpy()
                fields = self.store.read_into(sample_dates, target, points=self.points)
                if fields is not target:  # a view that cannot read in place (join, cutout)
                    target[...] = fields
            else:
                fields = self.store.read_into(sample_dates, self._read_buffer(), self.points)
                stored[b].numpy()[...] = fields[:, self.columns]
        return {
            "data": stored.permute(0, 1, 3, 4, 2),
            "time": torch.from_numpy(self.epoch_seconds[dates]),
        }

    @property
    def _sample_shape(self) -> tuple[int, int, int]:
        points = len(self.store.latitudes[self.points or slice(None)])
        variables = len(self.columns) if self.columns is not None else len(self.store.variables)
        return (self.store.ensembles, points, variables)

    def _read_buffer(self) -> np.ndarray:
        ensembles, points, _ = self._sample_shape
        shape = (len(self.offsets), len(self.store.variables), ensembles, points)
        if getattr(self, "_reads", None) is None or self._reads.shape != shape:
            self._reads = np.empty(shape, dtype=np.float32)
        return self._reads

    def _batch_buffer(self, shape: tuple[int, ...]) -> torch.Tensor:
        if torch.utils.data.get_worker_info() is None:
            return torch.empty(shape, dtype=torch.float32)  # in-process: a plain tensor
        ring = getattr(self, "_ring", None)
        if ring is None or ring[0].shape[1:] != shape[1:] or ring[0].shape[0] < shape[0]:
            ring = self._ring = [
                torch.empty(shape, dtype=torch.float32).share_memory_()
                for _ in range(self.batch_buffers)
            ]
            self._turn = 0
        self._turn = (self._turn + 1) % len(ring)
        return ring[self._turn][: shape[0]]

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_ring", None)  # each worker makes its own buffers
        state.pop("_reads", None)
        return state


class ResumableDataLoader(DataLoader):
    """A DataLoader over an EpochSampler whose position survives a checkpoint.

    Lightning saves `state_dict()` with the checkpoint and calls `load_state_dict()` before the
    resumed epoch. `progress` (set by the datamodule) returns (epoch, batches processed) from the
    trainer, which counts what the model consumed rather than what workers prefetched.
    """

    sampler: EpochSampler

    def __init__(self, *args, progress: Callable[[], tuple[int, int]] | None = None, **kwargs):
        kwargs.setdefault("collate_fn", collate_batches)
        super().__init__(*args, **kwargs)
        if isinstance(self.dataset, ForecastSamples):
            self.dataset.batch_buffers = (self.prefetch_factor or 2) + SPARE_BATCH_BUFFERS
        self.progress = progress
        self._batches_yielded = 0

    def __iter__(self) -> Iterator[Any]:
        self._batches_yielded = 0
        for batch in super().__iter__():
            self._batches_yielded += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        batch = self.batch_size or 1
        if self.progress is not None:  # batches the model processed, counted from epoch start
            epoch, batches = self.progress()
            return self.sampler.state_dict(batches * batch, epoch)
        return self.sampler.state_dict(self.sampler.started_at + self._batches_yielded * batch)

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.load_state_dict(state)


class ForecastDataModule(pl.LightningDataModule):
    def __init__(
        self,
        dataset_path: str,
        windows: dict[str, tuple[str, str]],
        variables: list[str],
        input_steps: int,
        rollout: int,
        step: int,
        batch_size: dict[str, int],
        num_workers: dict[str, int],
        seed: int,
        offsets: list[int] | None = None,
    ) -> None:
        """Reads every grid point until read_grid_shard (model sharding). `offsets` (a task's
        sample dates, see ForecastSamples) replace the forecaster's k inputs and rollout
        targets."""
        super().__init__()
        self.samples = {
            stage: ForecastSamples(
                dataset_path, start, end, variables, input_steps, rollout, step, None, offsets
            )
            for stage, (start, end) in windows.items()
        }
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.replica: tuple[int, int] | None = None  # set by deal_by_replica

    def read_grid_shard(self, points: slice) -> None:
        """Model sharding, set once the ranks are grouped: read only the contiguous grid
        `points` of this rank's shard (the model's grid sharding decides them)."""
        for samples in self.samples.values():
            samples.points = points

    def deal_by_replica(self, replica: int, replicas: int) -> None:
        """Deal samples by data-parallel replica (a model or ensemble group) instead of by
        rank: every rank of a group reads the same samples."""
        self.replica = (replica, replicas)

    def _loader(self, stage: str, shuffle: bool) -> DataLoader:
        trainer = getattr(self, "trainer", None)  # set by Lightning; None when used alone
        rank, world = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        if self.replica is not None:
            rank, world = self.replica
        sampler = EpochSampler(
            len(self.samples[stage]),
            seed=self.seed,
            shuffle=shuffle,
            rank=rank,
            world_size=world,
            even=stage == "training",  # equal step counts, or data-parallel ranks would hang
        )
        workers = self.num_workers[stage]
        options = dict(
            batch_size=self.batch_size[stage],
            sampler=sampler,
            num_workers=workers,
            persistent_workers=workers > 0,
        )
        if stage != "training":  # validation always runs whole: nothing to resume
            self.samples[stage].batch_buffers = 2 + SPARE_BATCH_BUFFERS
            return DataLoader(self.samples[stage], collate_fn=collate_batches, **options)
        progress = self._training_progress if trainer else None
        return ResumableDataLoader(self.samples[stage], progress=progress, **options)

    def _training_progress(self) -> tuple[int, int]:
        loop = self.trainer.fit_loop
        return (
            loop.epoch_progress.current.processed,
            loop.epoch_loop.batch_progress.current.processed,
        )

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Batches arrive in the store's memory order (see ForecastSamples.__getitems__);
        the layout the model wants is made here, on the device, where it is cheap."""
        if isinstance(batch, dict) and "data" in batch:
            batch = {**batch, "data": batch["data"].contiguous()}
        return batch

    def train_dataloader(self) -> ResumableDataLoader:
        return self._loader("training", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("validation", shuffle=False)
