"""The anemoi-datasets gridded zarr layout (zarr format 2): written atomically, opened lazily.

As anemoi-datasets writes it: `data` (dates, variables, ensembles, points) float32, one date per
chunk; `dates` datetime64[s]; `latitudes`/`longitudes` float64 degrees; `mean`/`stdev`/`minimum`/
`maximum` and `statistics_tendencies_<delta>_<stat>` per variable; `_ARRAY_DIMENSIONS` on every
array (so xarray reads it too); missing dates as ISO strings in the `missing_dates` attribute.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from squall.data.coordinates import coordinates_hash
from squall.data.dates import (
    DateLike,
    check_regular,
    frequency_to_string,
    frequency_to_timedelta,
    iso,
    window_indices,
)

LAYOUT_VERSION = "0.30"  # the anemoi-datasets layout version this writer follows
STATISTICS = ("mean", "stdev", "minimum", "maximum")
REQUIRED_ARRAYS = ("data", "dates", "latitudes", "longitudes")
CREATE_HINT = "Create it with `squall dataset create <recipe.yaml> <dataset.zarr>`."


class MissingDateError(LookupError):
    """A date listed in `missing_dates` was read: its values are (partly) absent."""


def write_dataset(
    path: str | os.PathLike,
    *,
    data: np.ndarray,
    dates: np.ndarray,
    latitudes: np.ndarray,
    longitudes: np.ndarray,
    variables: list[str],
    frequency: str | datetime.timedelta,
    field_shape: tuple[int, ...],
    missing_dates: list | tuple = (),
    variables_metadata: dict | None = None,
    statistics: dict | None = None,
    tendency_statistics: dict | None = None,
    resolution: str | None = None,
    recipe: dict | None = None,
    extra_attrs: dict | None = None,
) -> Path:
    """Write an anemoi-layout store at `path`, replacing an old one only once the new is complete.

    `statistics` holds mean/stdev/minimum/maximum arrays (variables,) and `period`
    {"start", "end"}; `tendency_statistics` maps a delta ("6h") to the same four arrays.
    """
    path = Path(path)
    data = np.asarray(data, dtype=np.float32)
    dates = np.asarray(dates).astype("datetime64[s]")
    missing = np.asarray(list(missing_dates)).astype("datetime64[s]")
    frequency = frequency_to_timedelta(frequency)
    _check_arrays(data, dates, latitudes, longitudes, variables, field_shape)
    check_regular(dates, frequency, where=f"writing {path}")
    _check_nan(data, dates, missing, variables)

    attrs: dict[str, Any] = {
        "variables": list(variables),
        "frequency": frequency_to_string(frequency),
        "start_date": iso(dates[0]),
        "end_date": iso(dates[-1]),
        "resolution": resolution,
        "field_shape": [int(n) for n in field_shape],
        "missing_dates": [iso(d) for d in np.sort(missing)],
        "variables_metadata": variables_metadata or {},
        "ensemble_dimension": int(data.shape[2]),  # anemoi records the number of members
        "flatten_grid": True,
        "version": LAYOUT_VERSION,
    }
    arrays: dict[str, np.ndarray] = {}
    if statistics is not None:
        attrs["statistics_start_date"] = iso(np.datetime64(statistics["period"]["start"]))
        attrs["statistics_end_date"] = iso(np.datetime64(statistics["period"]["end"]))
        arrays.update(_statistics_arrays(statistics, variables, prefix=""))
    for delta, stats in (tendency_statistics or {}).items():
        prefix = f"statistics_tendencies_{frequency_to_string(delta)}_"
        arrays.update(_statistics_arrays(stats, variables, prefix=prefix))
    if recipe is not None:
        attrs["recipe"] = recipe
    for key, value in (extra_attrs or {}).items():
        if key in attrs:
            raise ValueError(f"extra_attrs may not override the layout attribute {key!r}")
        attrs[key] = value
    attrs = _jsonable(attrs)

    _refuse_to_replace_foreign(path)
    # The new store is built beside the target, then renamed over it: a reader never sees a
    # half-written store, and a failed write leaves the previous one untouched.
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write_group(tmp, data, dates, latitudes, longitudes, arrays, attrs)
        _swap_into_place(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _check_arrays(data, dates, latitudes, longitudes, variables, field_shape) -> None:
    if data.ndim != 4:
        raise ValueError(f"data must be (dates, variables, ensembles, points), not {data.shape}")
    sizes = {
        "dates": len(dates),
        "variables": len(variables),
        "latitudes": len(latitudes),
        "longitudes": len(longitudes),
        "field_shape product": int(np.prod(field_shape)),
    }
    wanted = dict(zip(sizes, np.take(data.shape, [0, 1, 3, 3, 3]), strict=True))
    for name, size in sizes.items():
        if size != wanted[name]:
            raise ValueError(f"{name}: {size} entries, data {data.shape} needs {wanted[name]}")
    if len(set(variables)) != len(variables):
        raise ValueError(f"variable names must be unique, got {list(variables)}")


def _check_nan(data, dates, missing, variables) -> None:
    """NaN is only allowed on dates listed as missing (anemoi: a missing date is unusable)."""
    unknown = np.setdiff1d(missing, dates)
    if len(unknown):
        raise ValueError(f"missing_dates not among the dates: {[iso(d) for d in unknown]}")
    bad = ~np.isfinite(data).all(axis=(2, 3))  # (dates, variables)
    bad[np.isin(dates, missing)] = False
    if bad.any():
        i = int(np.flatnonzero(bad.any(axis=1))[0])
        names = [variables[j] for j in np.flatnonzero(bad[i])]
        raise ValueError(
            f"data has NaN or infinite values on {iso(dates[i])} for {names}, a date not listed "
            f"in missing_dates ({int(bad.any(axis=1).sum())} such dates). Fix the source (e.g. "
            "crop away masked points) or list the date as missing."
        )


def _statistics_arrays(stats: dict, variables: list[str], prefix: str) -> dict[str, np.ndarray]:
    if "variables" in stats and list(stats["variables"]) != list(variables):
        raise ValueError(
            f"statistics are for variables {list(stats['variables'])}, the data has "
            f"{list(variables)}: recompute them for this dataset"
        )
    arrays = {}
    for name in STATISTICS:
        values = np.asarray(stats[name], dtype=np.float64)
        if values.shape != (len(variables),):
            raise ValueError(
                f"statistics {prefix}{name} has shape {values.shape}, expected ({len(variables)},)"
            )
        arrays[prefix + name] = values
    return arrays


def _jsonable(value: Any) -> Any:
    """Attributes as plain JSON: dates as ISO strings, numpy values as Python ones."""

    def default(item: Any) -> Any:
        if isinstance(item, datetime.date | np.datetime64):
            return iso(np.datetime64(item))
        return item.tolist() if isinstance(item, np.generic | np.ndarray) else str(item)

    return json.loads(json.dumps(value, default=default))


def _refuse_to_replace_foreign(path: Path) -> None:
    if path.exists() and not ((path / ".zgroup").exists() or (path / "zarr.json").exists()):
        raise FileExistsError(
            f"{path} exists and is not a zarr store; refusing to replace it. Choose another "
            "output path or remove it yourself."
        )


def _write_group(tmp, data, dates, latitudes, longitudes, arrays, attrs) -> None:
    group = zarr.open_group(tmp, mode="w", zarr_format=2)
    cell = ["cell"]
    stored = group.create_array(
        "data", shape=data.shape, chunks=(1, *data.shape[1:]), dtype="float32", fill_value=np.nan
    )
    stored[...] = data
    stored.attrs["_ARRAY_DIMENSIONS"] = ["time", "variable", "ensemble", "cell"]
    coordinates = {
        "dates": (dates, ["time"]),
        "latitudes": (np.asarray(latitudes, dtype=np.float64), cell),
        "longitudes": (np.asarray(longitudes, dtype=np.float64), cell),
    }
    coordinates.update({name: (values, ["variable"]) for name, values in arrays.items()})
    for name, (values, dims) in coordinates.items():
        group.create_array(name, data=values).attrs["_ARRAY_DIMENSIONS"] = dims
    group.attrs.update(attrs)
    zarr.consolidate_metadata(tmp)


def _swap_into_place(tmp: Path, path: Path) -> None:
    if not path.exists():
        os.rename(tmp, path)
        return
    old = path.with_name(f"{path.name}.old-{os.getpid()}")
    shutil.rmtree(old, ignore_errors=True)
    os.rename(path, old)
    try:
        os.rename(tmp, path)
    except BaseException:
        os.rename(old, path)  # put the previous store back
        raise
    shutil.rmtree(old, ignore_errors=True)


def open_dataset(
    path: str | os.PathLike, start: DateLike | None = None, end: DateLike | None = None
) -> Dataset:
    """Open an anemoi-layout store lazily, optionally on the inclusive window start..end."""
    path = Path(path)
    group = _open_group(path)
    dates = np.asarray(group["dates"][:]).astype("datetime64[s]")
    attrs = dict(group.attrs)
    if "frequency" in attrs:
        frequency = frequency_to_timedelta(attrs["frequency"])
    elif len(dates) > 1:
        frequency = (dates[1] - dates[0]).astype(datetime.timedelta)
    else:
        raise ValueError(f"{path} has one date and no 'frequency' attribute: {CREATE_HINT}")
    check_regular(dates, frequency, where=f"opening {path}")
    first, stop = window_indices(dates, start, end)
    dataset = Dataset(path, dates, frequency, first, stop)
    dataset._zarr_group, dataset._opened_by = group, os.getpid()  # reuse this open
    return dataset


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


class Dataset:
    """A read-only, lazy view of an anemoi-layout store on a window of its dates.

    Indexing reads only the requested dates: `ds[i]` is (variables, ensembles, points) float32,
    `ds[i:j]` adds a leading date axis. Reading a missing date raises MissingDateError (its
    values are partly NaN); `read(..., allow_missing=True)` returns them anyway.
    """

    def __init__(self, path: Path, all_dates: np.ndarray, frequency, first: int, stop: int):
        self.path = path
        self.frequency: datetime.timedelta = frequency
        self._all_dates = all_dates
        self._first, self._stop = first, stop
        self._opened_by: int | None = None

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

    def __len__(self) -> int:
        return self._stop - self._first

    def __repr__(self) -> str:
        return (
            f"Dataset({str(self.path)!r}, {iso(self.dates[0])}..{iso(self.dates[-1])}, "
            f"{len(self)} dates, {len(self.variables)} variables)"
        )

    def __getitem__(self, index) -> np.ndarray:
        return self.read(index)

    def read(self, index, *, allow_missing: bool = False) -> np.ndarray:
        """Values for a date index, slice, list of indices, or a tuple (dates, ...) of them."""
        if isinstance(index, tuple):
            rows = self.read(index[0], allow_missing=allow_missing)
            leading = () if isinstance(index[0], int | np.integer) else (slice(None),)
            return rows[leading + index[1:]]
        data = self._group["data"]
        if isinstance(index, int | np.integer):
            position = range(len(self))[int(index)]  # IndexError and negative indices for free
            self._check_missing([position], allow_missing)
            return np.asarray(data[self._first + position])
        if isinstance(index, slice):
            positions = np.arange(len(self))[index]
            if index.step in (None, 1):  # contiguous: one read of exactly those chunks
                self._check_missing(positions, allow_missing)
                begin = self._first + (int(positions[0]) if len(positions) else 0)
                return np.asarray(data[begin : begin + len(positions)])
        else:
            positions = np.arange(len(self))[np.asarray(index, dtype=np.int64)]
        self._check_missing(positions, allow_missing)
        return np.asarray(data.oindex[self._first + positions])

    def _check_missing(self, positions, allow_missing: bool) -> None:
        hit = sorted(self.missing.intersection(int(p) for p in positions))
        if hit and not allow_missing:
            raise MissingDateError(
                f"date {iso(self.dates[hit[0]])} (index {hit[0]}) of {self.path} is missing: a "
                "source lacked it. Skip the indices in `dataset.missing`, or use "
                "`dataset.read(index, allow_missing=True)` to get its NaN-filled values."
            )

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self), *self._group["data"].shape[1:])

    @cached_property
    def dates(self) -> np.ndarray:
        return self._all_dates[self._first : self._stop]

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
    def name_to_index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.variables)}

    @cached_property
    def missing(self) -> set[int]:
        listed = np.asarray(self.metadata.get("missing_dates", [])).astype("datetime64[s]")
        return {int(i) for i in np.flatnonzero(np.isin(self.dates, listed))}

    @property
    def field_shape(self) -> tuple[int, ...]:
        return tuple(self.metadata.get("field_shape", (self.shape[-1],)))

    @property
    def resolution(self) -> str | None:
        return self.metadata.get("resolution")

    @cached_property
    def coordinates_hash(self) -> str:
        return coordinates_hash(self.latitudes, self.longitudes)

    @property
    def statistics(self) -> dict[str, np.ndarray]:
        """The store's per-variable statistics (computed over its statistics period)."""
        return self._read_statistics("", "statistics")

    def statistics_tendencies(self, delta: str | datetime.timedelta = "6h") -> dict:
        """Statistics of x(t + delta) - x(t) stored with the dataset."""
        prefix = f"statistics_tendencies_{frequency_to_string(delta)}_"
        return self._read_statistics(prefix, f"{frequency_to_string(delta)} tendency statistics")

    def _read_statistics(self, prefix: str, what: str) -> dict[str, np.ndarray]:
        absent = [prefix + name for name in STATISTICS if prefix + name not in self._group]
        if absent:
            raise KeyError(f"{self.path} has no {what} (arrays {absent} absent). {CREATE_HINT}")
        return {name: np.asarray(self._group[prefix + name][:]) for name in STATISTICS}
