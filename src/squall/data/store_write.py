"""Writing the anemoi-datasets gridded zarr layout (zarr format 2), atomically and resumably.

As anemoi-datasets writes it: `data` (dates, variables, ensembles, points) float32, one date per
chunk; `dates` datetime64[s]; `latitudes`/`longitudes` float64 degrees; `mean`/`stdev`/`minimum`/
`maximum` and `statistics_tendencies_<delta>_<stat>` per variable; `_ARRAY_DIMENSIONS` on every
array (so xarray reads it too); missing dates as ISO strings in the `missing_dates` attribute.

A store is built in `<out>.partial` beside its target and renamed into place once complete, so a
reader never sees a half-written store. The builder notes each date it has written in a progress
file inside the partial store: an interrupted build resumes at the first unwritten date.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from squall.data.base import STATISTICS
from squall.data.dates import check_regular, frequency_to_string, frequency_to_timedelta, iso

LAYOUT_VERSION = "0.30"  # the anemoi-datasets layout version this writer follows
PROGRESS_FILE = ".squall-written"  # one written date index per line, inside the partial store


class StoreBuilder:
    """Builds a store date by date in `<path>.partial`; `finish()` renames it over `path`.

    `fingerprint` identifies what is being built (e.g. a hash of the recipe): `resume=True`
    continues a partial store only if it was started with the same fingerprint.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        dates: np.ndarray,
        latitudes: np.ndarray,
        longitudes: np.ndarray,
        variables: list[str],
        ensembles: int,
        frequency: str | datetime.timedelta,
        fingerprint: str = "",
        resume: bool = False,
    ) -> None:
        self.path = Path(path)
        self.dates = np.asarray(dates).astype("datetime64[s]")
        self.variables = list(variables)
        self.frequency = frequency_to_timedelta(frequency)
        if len(set(self.variables)) != len(self.variables):
            raise ValueError(f"variable names must be unique, got {self.variables}")
        if len(latitudes) != len(longitudes):
            raise ValueError(f"{len(latitudes)} latitudes but {len(longitudes)} longitudes")
        check_regular(self.dates, self.frequency, where=f"writing {self.path}")
        _refuse_to_replace_foreign(self.path)
        self.partial = self.path.with_name(f"{self.path.name}.partial")
        self.shape = (len(self.dates), len(self.variables), int(ensembles), len(latitudes))
        self.written: set[int] = set()
        if resume and self._can_resume(fingerprint):
            self.group = zarr.open_group(self.partial, mode="r+", zarr_format=2)
            self.written = self._read_progress()
        else:
            shutil.rmtree(self.partial, ignore_errors=True)
            self.group = self._create(latitudes, longitudes, fingerprint)
        self._progress = open(self.partial / PROGRESS_FILE, "a")  # noqa: SIM115 (closed in finish)

    def _can_resume(self, fingerprint: str) -> bool:
        if not (self.partial / ".zgroup").exists():
            return False  # nothing to resume: start afresh
        started = json.loads((self.partial / ".zattrs").read_text()).get("squall_build", {})
        if started.get("fingerprint") != fingerprint or started.get("shape") != list(self.shape):
            raise ValueError(
                f"{self.partial} was started from a different recipe or sources; run without "
                "--resume to start again from scratch"
            )
        return True

    def _read_progress(self) -> set[int]:
        lines = (self.partial / PROGRESS_FILE).read_text().split("\n")
        return {int(line) for line in lines[:-1] if line.strip()}  # a torn last line is redone

    def _create(self, latitudes, longitudes, fingerprint: str) -> zarr.Group:
        group = zarr.open_group(self.partial, mode="w", zarr_format=2)
        stored = group.create_array(
            "data",
            shape=self.shape,
            chunks=(1, *self.shape[1:]),
            dtype="float32",
            fill_value=np.nan,
        )
        stored.attrs["_ARRAY_DIMENSIONS"] = ["time", "variable", "ensemble", "cell"]
        coordinates = {
            "dates": (self.dates, ["time"]),
            "latitudes": (np.asarray(latitudes, dtype=np.float64), ["cell"]),
            "longitudes": (np.asarray(longitudes, dtype=np.float64), ["cell"]),
        }
        for name, (values, dims) in coordinates.items():
            group.create_array(name, data=values).attrs["_ARRAY_DIMENSIONS"] = dims
        group.attrs["squall_build"] = {"fingerprint": fingerprint, "shape": list(self.shape)}
        return group

    def write(self, index: int, values: np.ndarray) -> None:
        """Write date `index`: values (variables, ensembles, points)."""
        self.write_block(index, np.asarray(values)[None])

    def write_block(self, first: int, values: np.ndarray) -> None:
        """Write consecutive dates first, first + 1, ...: values (dates, variables, ...)."""
        values = np.asarray(values, dtype=np.float32)
        if values.shape[1:] != self.shape[1:]:
            raise ValueError(f"values of shape {values.shape[1:]}, the store needs {self.shape}")
        self.group["data"][first : first + len(values)] = values
        self._progress.write("".join(f"{first + i}\n" for i in range(len(values))))
        self._progress.flush()
        self.written.update(range(first, first + len(values)))

    def finish(
        self,
        *,
        field_shape: tuple[int, ...],
        missing_dates: list | tuple = (),
        variables_metadata: dict | None = None,
        statistics: dict | None = None,
        tendency_statistics: dict | None = None,
        resolution: str | None = None,
        recipe: dict | None = None,
        extra_attrs: dict | None = None,
    ) -> Path:
        """Add attributes and statistics, then move the complete store into place."""
        self._progress.close()
        unwritten = sorted(set(range(self.shape[0])) - self.written)
        if unwritten:
            raise ValueError(f"dates {unwritten[:5]} of {self.partial} were never written")
        if int(np.prod(field_shape)) != self.shape[3]:
            raise ValueError(f"field_shape {field_shape} does not hold {self.shape[3]} points")
        missing = np.sort(np.asarray(list(missing_dates)).astype("datetime64[s]"))
        unknown = np.setdiff1d(missing, self.dates)
        if len(unknown):
            raise ValueError(f"missing_dates not among the dates: {[iso(d) for d in unknown]}")
        attrs: dict[str, Any] = {
            "variables": self.variables,
            "frequency": frequency_to_string(self.frequency),
            "start_date": iso(self.dates[0]),
            "end_date": iso(self.dates[-1]),
            "resolution": resolution,
            "field_shape": [int(n) for n in field_shape],
            "missing_dates": [iso(d) for d in missing],
            "variables_metadata": variables_metadata or {},
            "ensemble_dimension": self.shape[2],  # anemoi records the number of members
            "flatten_grid": True,
            "version": LAYOUT_VERSION,
        }
        arrays: dict[str, np.ndarray] = {}
        if statistics is not None:
            attrs["statistics_start_date"] = iso(np.datetime64(statistics["period"]["start"]))
            attrs["statistics_end_date"] = iso(np.datetime64(statistics["period"]["end"]))
            arrays.update(_statistics_arrays(statistics, self.variables, prefix=""))
        for delta, stats in (tendency_statistics or {}).items():
            prefix = f"statistics_tendencies_{frequency_to_string(delta)}_"
            arrays.update(_statistics_arrays(stats, self.variables, prefix=prefix))
        if recipe is not None:
            attrs["recipe"] = recipe
        for key, value in (extra_attrs or {}).items():
            if key in attrs:
                raise ValueError(f"extra_attrs may not override the layout attribute {key!r}")
            attrs[key] = value
        for name, values in arrays.items():
            self.group.create_array(name, data=values, overwrite=True).attrs[
                "_ARRAY_DIMENSIONS"
            ] = ["variable"]
        self.group.attrs.clear()
        self.group.attrs.update(_jsonable(attrs))
        (self.partial / PROGRESS_FILE).unlink()
        zarr.consolidate_metadata(self.partial)
        _swap_into_place(self.partial, self.path)
        return self.path

    def abandon(self) -> None:
        """Remove the partial store (a failed in-memory write leaves nothing behind)."""
        if not self._progress.closed:
            self._progress.close()
        shutil.rmtree(self.partial, ignore_errors=True)


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
    """Write in-memory arrays as a store at `path`, replacing an old one only once complete.

    `statistics` holds mean/stdev/minimum/maximum arrays (variables,) and `period`
    {"start", "end"}; `tendency_statistics` maps a delta ("6h") to the same four arrays.
    """
    data = np.asarray(data, dtype=np.float32)
    dates = np.asarray(dates).astype("datetime64[s]")
    _check_arrays(data, dates, latitudes, longitudes, variables, field_shape)
    missing = np.asarray(list(missing_dates)).astype("datetime64[s]")
    builder = StoreBuilder(
        path,
        dates=dates,
        latitudes=latitudes,
        longitudes=longitudes,
        variables=variables,
        ensembles=data.shape[2],
        frequency=frequency,
    )
    try:
        _check_nan(data, dates, missing, variables)
        builder.write_block(0, data)
        return builder.finish(
            field_shape=field_shape,
            missing_dates=list(missing),
            variables_metadata=variables_metadata,
            statistics=statistics,
            tendency_statistics=tendency_statistics,
            resolution=resolution,
            recipe=recipe,
            extra_attrs=extra_attrs,
        )
    except BaseException:
        builder.abandon()
        raise


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
