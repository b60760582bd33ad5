"""Samples of several datasets at once: the same dates from each, on each dataset's own grid.

The datasets must share their step (frequency); a sample's dates must exist and be present in
every dataset, so the valid anchors are found on the intersection of their dates. Each dataset
is then read by its own ForecastSamples (its buffers, its column selection), at the positions of
those dates in that dataset.
"""

from __future__ import annotations

from functools import reduce
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from squall.data.base import Dataset as Store
from squall.data.datamodule import ForecastDataModule, ForecastSamples
from squall.data.dates import frequency_to_string, iso
from squall.data.sampling import valid_anchors
from squall.data.store import open_dataset


def check_same_frequency(stores: dict[str, Store]) -> None:
    """Samples step through all datasets together: their steps must be equal."""
    frequencies = {name: store.frequency for name, store in stores.items()}
    if len(set(frequencies.values())) > 1:
        listed = ", ".join(f"{name}: {frequency_to_string(f)}" for name, f in frequencies.items())
        raise ValueError(
            f"the datasets must share one timestep, but their steps differ ({listed}); select "
            "a common one with the `frequency` selector, e.g. {dataset: path, frequency: 6h}"
        )


def common_anchors(stores: dict[str, Store], offsets: np.ndarray) -> dict[str, np.ndarray]:
    """{name: positions of the anchors in that dataset} for every anchor whose dates (anchor +
    offsets, in steps of the shared frequency) all exist and are present in every dataset."""
    check_same_frequency(stores)
    dates = {name: store.dates.astype("datetime64[s]") for name, store in stores.items()}
    common = reduce(np.intersect1d, dates.values())
    if len(common) == 0:
        ranges = ", ".join(
            f"{name}: {iso(d[0])}..{iso(d[-1])}" if len(d) else f"{name}: none"
            for name, d in dates.items()
        )
        raise ValueError(
            f"the datasets have no date in common ({ranges}); their periods must overlap and "
            "their dates fall on the same hours"
        )
    missing = set()
    for name, store in stores.items():
        absent = dates[name][sorted(store.missing)]
        missing |= set(np.flatnonzero(np.isin(common, absent)).tolist())
    anchors = valid_anchors(len(common), missing, offsets)
    return {name: np.searchsorted(dates[name], common[anchors]) for name in stores}


class MultiDatasetSamples(Dataset):
    """Each item: `data` {name: (time, ensemble, grid, variable)} and `time` (time,) epoch s."""

    def __init__(
        self,
        datasets: dict[str, dict[str, Any]],
        start: str,
        end: str,
        offsets: np.ndarray,
    ) -> None:
        """`datasets`: {name: {"dataset": path or open_dataset mapping, "variables": [...]}}."""
        # Opened first, so that a dataset's own selectors (start, end, ...) apply before the
        # window (open_dataset's keywords would replace them).
        self.samples = {
            name: ForecastSamples(
                open_dataset(entry["dataset"]),
                start,
                end,
                entry["variables"],
                1,
                0,
                1,
                offsets=list(offsets),
            )
            for name, entry in datasets.items()
        }
        stores = {name: samples.store for name, samples in self.samples.items()}
        anchors = common_anchors(stores, np.asarray(offsets))
        count = len(next(iter(anchors.values())))
        if count == 0:
            raise ValueError(
                f"no sample in {start}..{end} has all its dates (offsets {list(offsets)}) "
                f"present in every dataset ({list(datasets)}); widen the window"
            )
        for name, samples in self.samples.items():
            samples.indices = anchors[name]

    def __len__(self) -> int:
        return len(next(iter(self.samples.values())))

    def __getitem__(self, item: int) -> dict[str, Any]:
        batch = self.__getitems__([item])
        return {
            "data": {name: value[0].contiguous() for name, value in batch["data"].items()},
            "time": batch["time"][0],
        }

    def __getitems__(self, items: list[int]) -> dict[str, Any]:
        """A whole batch: `data` {name: (B, T, E, G, V)} and `time` (B, T), the same dates
        from every dataset (see common_anchors)."""
        batches = {name: samples.__getitems__(items) for name, samples in self.samples.items()}
        first = next(iter(batches.values()))
        return {"data": {name: b["data"] for name, b in batches.items()}, "time": first["time"]}


class MultiDataModule(ForecastDataModule):
    """ForecastDataModule's loaders (resumable, rank-dealt) over MultiDatasetSamples."""

    def __init__(
        self,
        datasets: dict[str, dict[str, Any]],
        windows: dict[str, tuple[str, str]],
        offsets: np.ndarray,
        batch_size: dict[str, int],
        num_workers: dict[str, int],
        seed: int,
    ) -> None:
        # The parent sets up the loaders' settings (no windows: it builds no samples of its
        # own); the samples are multi-dataset ones.
        super().__init__("", {}, [], 1, 0, 1, batch_size, num_workers, seed)
        self.samples = {
            stage: MultiDatasetSamples(datasets, start, end, offsets)
            for stage, (start, end) in windows.items()
        }

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Each dataset's batch arrives in its store's memory order; made contiguous here."""
        if isinstance(batch, dict) and isinstance(batch.get("data"), dict):
            data = {name: value.contiguous() for name, value in batch["data"].items()}
            return {**batch, "data": data}
        return super().on_after_batch_transfer(batch, dataloader_idx)


def open_stores(datasets: dict[str, Any]) -> dict[str, Store]:
    """{name: opened dataset} of {name: path or open_dataset mapping}."""
    return {name: open_dataset(spec) for name, spec in datasets.items()}
