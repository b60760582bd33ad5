"""Opening anemoi-layout zarr stores (format 2, any chunking), with anemoi's selectors.

`open_dataset` takes a path, or a mapping in anemoi's open_dataset vocabulary, and returns a lazy
`Dataset`: `start`/`end`, `frequency`, `select`/`drop`/`rename`/`reorder`, `area`, `thinning`, and
the combinations `join` (same dates, union of variables), `concat` (along dates) and `cutout`
(a regional dataset inside a global one). Writing lives in squall.data.store_write.
"""

from __future__ import annotations

import datetime
import os
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.core.buffer import default_buffer_prototype

from squall.data import views
from squall.data.base import STATISTICS, Dataset, MissingDateError, Points
from squall.data.dates import DateLike, check_regular, frequency_to_timedelta
from squall.data.store_write import write_dataset

__all__ = ["Dataset", "MissingDateError", "ZarrDataset", "open_dataset", "write_dataset"]

_ND_BUFFER = default_buffer_prototype().nd_buffer
REQUIRED_ARRAYS = ("data", "dates", "latitudes", "longitudes")
CREATE_HINT = "Create it with `squall dataset create <recipe.yaml> <dataset.zarr>`."
COMBINATIONS = ("join", "concat", "cutout")
SELECTORS = {
    "start", "end", "frequency", "select", "drop", "rename", "reorder", "area", "thinning",
    "min_distance_km",
}  # fmt: skip


def open_dataset(source: Any, start: DateLike | None = None, end: DateLike | None = None, **kw):
    """Open a store, a combination of stores, or a selection of either, lazily.

    `source` is a path, a Dataset, or a mapping such as {"dataset": path, "select": [...]},
    {"join": [a, b]}, {"concat": [a, b]} or {"cutout": [regional, global]} (the members are
    themselves anything `open_dataset` accepts). Selectors given as keywords apply on top.
    """
    selectors = {"start": start, "end": end, **kw}
    if isinstance(source, dict):
        source = dict(source)
        combination = [key for key in COMBINATIONS if key in source]
        base_key = combination or (["dataset"] if "dataset" in source else [])
        if len(base_key) != 1:
            raise ValueError(
                f"a dataset mapping needs exactly one of 'dataset', {list(COMBINATIONS)}; got "
                f"keys {sorted(source)}"
            )
        inner = source.pop(base_key[0])
        unknown = set(source) - SELECTORS
        if unknown:
            raise ValueError(
                f"unknown dataset options {sorted(unknown)}; known: {sorted(SELECTORS)}"
            )
        selectors = {**source, **{k: v for k, v in selectors.items() if v is not None}}
        if base_key[0] == "dataset":
            dataset = open_dataset(inner)
        else:
            dataset = _combine(base_key[0], inner, selectors.pop("min_distance_km", None))
    elif isinstance(source, Dataset):
        dataset = source
    else:
        dataset = ZarrDataset(Path(source))
    return views.select(dataset, **{k: v for k, v in selectors.items() if v is not None})


def _combine(kind: str, members: Any, min_distance_km: float | None) -> Dataset:
    if not isinstance(members, list | tuple) or len(members) < 2:
        raise ValueError(f"'{kind}' takes a list of at least two datasets, got {members!r}")
    opened = [open_dataset(member) for member in members]
    if kind == "join":
        return views.Join(opened)
    if kind == "concat":
        return views.Concat(opened)
    if len(opened) != 2:
        raise ValueError("'cutout' takes exactly two datasets: [regional, global]")
    return views.Cutout(opened[0], opened[1], min_distance_km=min_distance_km)


def _open_group(path: Path) -> zarr.Group:
    if not path.exists():
        raise FileNotFoundError(f"no dataset store at {path}. {CREATE_HINT}")
    try:
        group = zarr.open_group(path, mode="r")
    except Exception as error:
        raise ValueError(
            f"{path} exists but is not a zarr store ({error}). {CREATE_HINT}"
        ) from error
    for name in REQUIRED_ARRAYS:
        if name not in group:
            raise ValueError(
                f"{path} has no '{name}' array, so it is not a complete anemoi-layout dataset "
                f"(an interrupted or foreign write?). Re-create it: {CREATE_HINT}"
            )
    return group


class ZarrDataset(Dataset):
    """One anemoi-layout store, read lazily (each date read is one chunk for squall's stores)."""

    def __init__(self, path: Path):
        self.path = path
        group = _open_group(path)
        self._zarr_group, self._opened_by = group, os.getpid()
        self.dates = np.asarray(group["dates"][:]).astype("datetime64[s]")
        attrs = dict(group.attrs)
        if "frequency" in attrs:
            self.frequency = frequency_to_timedelta(attrs["frequency"])
        elif len(self.dates) > 1:
            self.frequency = (self.dates[1] - self.dates[0]).astype(datetime.timedelta)
        else:
            raise ValueError(f"{path} has one date and no 'frequency' attribute: {CREATE_HINT}")
        check_regular(self.dates, self.frequency, where=f"opening {path}")

    @property
    def _group(self) -> zarr.Group:
        # Reopened after a fork (dataloader workers) rather than sharing zarr's I/O state.
        if self._opened_by != os.getpid():
            self._zarr_group = _open_group(self.path)
            self._opened_by = os.getpid()
        return self._zarr_group

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_zarr_group", None)
        state["_opened_by"] = None
        return state

    def _read_rows(self, positions: np.ndarray, points: Points, out=None) -> np.ndarray:
        data = self._group["data"]
        positions = np.asarray(positions, dtype=np.int64)
        contiguous = len(positions) > 0 and (np.diff(positions) == 1).all()
        rows = slice(int(positions[0]), int(positions[-1]) + 1) if contiguous else positions
        if points is None:
            points = slice(None)
        if isinstance(rows, slice) and isinstance(points, slice):
            selection = (rows, slice(None), slice(None), points)
            if out is not None and out.dtype == np.float32 and out.flags.c_contiguous:
                # Decompressed straight into the caller's buffer: no fresh allocation.
                data.get_basic_selection(selection, out=_ND_BUFFER.from_numpy_array(out))
                return out
            return np.asarray(data[selection])  # one read of exactly those chunks
        return np.asarray(data.oindex[rows, :, :, points])

    @property
    def ensembles(self) -> int:
        return int(self._group["data"].shape[2])

    @cached_property
    def latitudes(self) -> np.ndarray:
        return np.asarray(self._group["latitudes"][:], dtype=np.float64)

    @cached_property
    def longitudes(self) -> np.ndarray:
        return np.asarray(self._group["longitudes"][:], dtype=np.float64)

    @cached_property
    def metadata(self) -> dict:
        return dict(self._group.attrs)

    @cached_property
    def variables(self) -> list[str]:
        if "variables" in self.metadata:
            return list(self.metadata["variables"])
        by_index = self.metadata["name_to_index"]  # older anemoi stores
        return sorted(by_index, key=by_index.get)

    @cached_property
    def missing(self) -> set[int]:
        listed = np.asarray(self.metadata.get("missing_dates", [])).astype("datetime64[s]")
        return {int(i) for i in np.flatnonzero(np.isin(self.dates, listed))}

    @property
    def field_shape(self) -> tuple[int, ...]:
        return tuple(self.metadata.get("field_shape", (len(self.latitudes),)))

    def _statistics(self, prefix: str, what: str) -> dict[str, np.ndarray]:
        absent = [prefix + name for name in STATISTICS if prefix + name not in self._group]
        if absent:
            raise KeyError(f"{self.path} has no {what} (arrays {absent} absent). {CREATE_HINT}")
        return {name: np.asarray(self._group[prefix + name][:]) for name in STATISTICS}
