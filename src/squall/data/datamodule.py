"""Samples for training and validation, read lazily from an anemoi-layout store."""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from squall.data.sampling import sample_offsets, valid_sample_indices
from squall.data.store import open_dataset


class ForecastSamples(Dataset):
    """Each item: `data` (time, ensemble, grid, variable) float32 and `time` (time,) epoch seconds.

    Times are the k inputs followed by the r targets. Variables are taken in `variables` order.
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
    ) -> None:
        self.store = open_dataset(dataset_path, start=start, end=end)
        unknown = [name for name in variables if name not in self.store.name_to_index]
        if unknown:
            raise ValueError(
                f"variables {unknown} are not in the dataset {dataset_path} (it has "
                f"{self.store.variables}); fix data.forcing/diagnostic/drop in the config"
            )
        self.columns = [self.store.name_to_index[name] for name in variables]
        self.offsets = sample_offsets(input_steps, rollout, step)
        self.indices = valid_sample_indices(
            len(self.store), set(self.store.missing), input_steps, rollout, step
        )
        if len(self.indices) == 0:
            raise ValueError(
                f"no complete sample in {start}..{end} of {dataset_path}: the window holds "
                f"{len(self.store)} dates ({len(self.store.missing)} missing) but a sample needs "
                f"{len(self.offsets)} consecutive present dates {step} step(s) apart; widen the "
                "window"
            )
        self.epoch_seconds = self.store.dates.astype("datetime64[s]").astype(np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        dates = self.indices[item] + self.offsets
        fields = np.stack([self.store[int(d)][self.columns] for d in dates])  # (T, V, E, G)
        return {
            "data": torch.from_numpy(np.ascontiguousarray(fields.transpose(0, 2, 3, 1))),
            "time": torch.from_numpy(self.epoch_seconds[dates]),
        }


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
    ) -> None:
        super().__init__()
        self.samples = {
            stage: ForecastSamples(dataset_path, start, end, variables, input_steps, rollout, step)
            for stage, (start, end) in windows.items()
        }
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed

    def _loader(self, stage: str, shuffle: bool) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(
            self.samples[stage],
            batch_size=self.batch_size[stage],
            shuffle=shuffle,
            num_workers=self.num_workers[stage],
            generator=generator,
            persistent_workers=self.num_workers[stage] > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("training", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("validation", shuffle=False)
