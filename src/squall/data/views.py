"""Selections and combinations of datasets, as in anemoi-datasets' open_dataset.

Each view maps its dates, variables and grid points onto its parents' and reads from them only
what it is asked for. `select()` applies the keyword selectors in a fixed order: dates
(start/end, frequency), then grid (area, thinning), then variables (select/drop, rename, reorder).
"""

from __future__ import annotations

import datetime
from functools import cached_property
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from squall.data.base import STATISTICS, Dataset, Points
from squall.data.dates import (
    DateLike,
    check_regular,
    frequency_to_string,
    frequency_to_timedelta,
    window_indices,
)

EARTH_RADIUS_KM = 6371.0


def select(
    dataset: Dataset,
    *,
    start: DateLike | None = None,
    end: DateLike | None = None,
    frequency: str | datetime.timedelta | None = None,
    area: tuple[float, float, float, float] | list | None = None,
    thinning: int | None = None,
    select: list[str] | str | None = None,
    drop: list[str] | str | None = None,
    rename: dict[str, str] | None = None,
    reorder: list[str] | dict[str, int] | None = None,
) -> Dataset:
    """A view of `dataset` with the given selectors applied (the dataset itself if none)."""
    dates = np.arange(len(dataset))
    step = dataset.frequency
    if start is not None or end is not None:
        first, stop = window_indices(dataset.dates, start, end)
        dates = dates[first:stop]
    if frequency is not None:
        wanted = frequency_to_timedelta(frequency)
        ratio = wanted / dataset.frequency
        if ratio < 1 or ratio != int(ratio):
            raise ValueError(
                f"frequency {frequency_to_string(wanted)} is not a whole multiple of the "
                f"dataset's {frequency_to_string(dataset.frequency)}: choose a multiple"
            )
        dates, step = dates[:: int(ratio)], wanted
    points = _points(dataset, area, thinning)
    columns = _columns(dataset.variables, select, drop, reorder)
    names = [dataset.variables[j] for j in columns]
    if rename:
        unknown = sorted(set(rename) - set(dataset.variables))
        if unknown:
            raise ValueError(f"cannot rename {unknown}: not among {dataset.variables}")
        names = [rename.get(name, name) for name in names]
        if len(set(names)) != len(names):
            raise ValueError(f"renaming gives duplicate variable names {names}")
    unchanged = (
        len(dates) == len(dataset) and points is None and names == list(dataset.variables)
    ) and step == dataset.frequency
    if unchanged:
        return dataset
    return Subset(dataset, dates, columns, points, names, step)


def _columns(variables, select, drop, reorder) -> list[int]:
    def names_of(value: Any, what: str) -> list[str]:
        names = [value] if isinstance(value, str) else list(value)
        unknown = [name for name in names if name not in variables]
        if unknown:
            raise ValueError(f"cannot {what} {unknown}: the dataset has {list(variables)}")
        return names

    kept = list(variables)
    if select is not None:
        chosen = set(names_of(select, "select"))
        kept = [name for name in kept if name in chosen]  # dataset order, as anemoi keeps it
    if drop is not None:
        dropped = set(names_of(drop, "drop"))
        kept = [name for name in kept if name not in dropped]
    if not kept:
        raise ValueError("the selection leaves no variable: select fewer or drop fewer")
    if reorder is not None:
        order = sorted(reorder, key=reorder.get) if isinstance(reorder, dict) else list(reorder)
        if sorted(order) != sorted(kept):
            raise ValueError(
                f"reorder must name each selected variable once: got {order}, selected {kept}"
            )
        kept = order
    return [variables.index(name) for name in kept]


def _points(dataset: Dataset, area, thinning: int | None) -> np.ndarray | None:
    keep = np.ones(len(dataset.latitudes), dtype=bool)
    if thinning is not None and int(thinning) > 1:
        every = int(thinning)
        shape = tuple(dataset.field_shape)
        if len(shape) == 2 and shape[0] * shape[1] == len(keep):  # regular grid: rows and columns
            rows, cols = np.indices(shape)
            keep &= ((rows % every == 0) & (cols % every == 0)).ravel()
        else:
            keep &= np.arange(len(keep)) % every == 0
    if area is not None:
        if len(area) != 4:
            raise ValueError(f"area is (north, west, south, east) in degrees, got {area!r}")
        north, west, south, east = (float(a) for a in area)
        if south > north:
            raise ValueError(f"area {area}: south {south} is north of north {north}")
        lat, lon = dataset.latitudes, dataset.longitudes
        offset = np.mod(lon - west, 360.0)  # degrees east of the western edge
        span = 360.0 if east - west >= 360.0 else np.mod(east - west, 360.0)
        keep &= (lat >= south) & (lat <= north) & (offset <= span + 1e-9)
    if keep.all():
        return None
    if not keep.any():
        raise ValueError(f"area {area} and thinning {thinning} leave no grid point")
    return np.flatnonzero(keep)


def _compose_points(own: np.ndarray | None, asked: Points) -> Points:
    if own is None:
        return asked
    return own if asked is None else own[asked]


class Subset(Dataset):
    """Some dates, variables (possibly renamed and reordered) and grid points of a parent."""

    def __init__(self, parent, dates, columns, points, names, frequency):
        self.parent, self.path = parent, parent.path
        self._dates, self.columns, self.points = np.asarray(dates), list(columns), points
        self.variables, self.frequency = list(names), frequency
        self.ensembles = parent.ensembles
        self.metadata = parent.metadata
        self._all_columns = self.columns == list(range(len(parent.variables)))

    @cached_property
    def dates(self) -> np.ndarray:
        return self.parent.dates[self._dates]

    @cached_property
    def missing(self) -> set[int]:
        return {i for i, p in enumerate(self._dates) if int(p) in self.parent.missing}

    @cached_property
    def latitudes(self) -> np.ndarray:
        return self.parent.latitudes if self.points is None else self.parent.latitudes[self.points]

    @cached_property
    def longitudes(self) -> np.ndarray:
        lon = self.parent.longitudes
        return lon if self.points is None else lon[self.points]

    @property
    def field_shape(self) -> tuple[int, ...]:
        if self.points is None:
            return self.parent.field_shape
        shape = tuple(self.parent.field_shape)
        if len(shape) == 2:  # a rectangle of a regular grid (area, thinning) stays 2-D
            rows = np.unique(self.points // shape[1])
            cols = np.unique(self.points % shape[1])
            if len(rows) * len(cols) == len(self.points):
                return (len(rows), len(cols))
        return (len(self.points),)

    def _read_rows(self, positions: np.ndarray, points: Points, out=None) -> np.ndarray:
        points = _compose_points(self.points, points)
        if self._all_columns:
            return self.parent._read_rows(self._dates[positions], points, out=out)
        return self.parent._read_rows(self._dates[positions], points)[:, self.columns]

    def _statistics(self, prefix: str, what: str) -> dict[str, np.ndarray]:
        stats = self.parent._statistics(prefix, what)
        return {name: stats[name][self.columns] for name in STATISTICS}


def _same_grid(datasets: list[Dataset], what: str) -> None:
    for other in datasets[1:]:
        if other.coordinates_hash != datasets[0].coordinates_hash:
            raise ValueError(
                f"cannot {what} {datasets[0].path} and {other.path}: they are on different grids "
                f"({len(datasets[0].latitudes)} and {len(other.latitudes)} points)"
            )


class _Combined(Dataset):
    def __init__(self, datasets: list[Dataset]):
        self.datasets = list(datasets)
        self.path = datasets[0].path
        self.metadata = datasets[0].metadata
        self.frequency = datasets[0].frequency
        ensembles = {d.ensembles for d in datasets}
        if len(ensembles) != 1:
            raise ValueError(f"datasets have different numbers of ensemble members: {ensembles}")
        self.ensembles = ensembles.pop()


class Join(_Combined):
    """The same dates and grid, the union of variables; a later dataset's variable of the same
    name replaces an earlier one (as in anemoi-datasets)."""

    def __init__(self, datasets: list[Dataset]):
        super().__init__(datasets)
        for other in datasets[1:]:
            if not np.array_equal(other.dates, datasets[0].dates):
                raise ValueError(
                    f"cannot join {datasets[0].path} and {other.path}: their dates differ; "
                    "select the same start/end/frequency for both"
                )
        _same_grid(datasets, "join")
        source: dict[str, tuple[int, int]] = {}
        for d, dataset in enumerate(datasets):
            for j, name in enumerate(dataset.variables):
                source[name] = (d, j)
        self.variables = list(source)
        self.sources = [source[name] for name in self.variables]
        self.dates = datasets[0].dates
        self.latitudes, self.longitudes = datasets[0].latitudes, datasets[0].longitudes
        self.field_shape = datasets[0].field_shape
        self.missing = set().union(*(d.missing for d in datasets))

    def _read_rows(self, positions: np.ndarray, points: Points, out=None) -> np.ndarray:
        used = sorted({d for d, _ in self.sources})
        rows = {d: self.datasets[d]._read_rows(positions, points) for d in used}
        return np.stack([rows[d][:, j] for d, j in self.sources], axis=1)

    def _statistics(self, prefix: str, what: str) -> dict[str, np.ndarray]:
        stats = {d: self.datasets[d]._statistics(prefix, what) for d, _ in set(self.sources)}
        return {name: np.array([stats[d][name][j] for d, j in self.sources]) for name in STATISTICS}


class Concat(_Combined):
    """Datasets one after the other in time: same variables and grid, a regular time axis."""

    def __init__(self, datasets: list[Dataset]):
        super().__init__(datasets)
        for other in datasets[1:]:
            if other.variables != datasets[0].variables:
                raise ValueError(
                    f"cannot concat {datasets[0].path} and {other.path}: variables "
                    f"{datasets[0].variables} and {other.variables} differ; select the same ones"
                )
        _same_grid(datasets, "concat")
        self.dates = np.concatenate([d.dates for d in datasets])
        check_regular(self.dates, self.frequency, where="concat")
        self.variables = datasets[0].variables
        self.latitudes, self.longitudes = datasets[0].latitudes, datasets[0].longitudes
        self.field_shape = datasets[0].field_shape
        self.starts = np.cumsum([0] + [len(d) for d in datasets])
        offsets = zip(self.starts[:-1], datasets, strict=True)
        self.missing = {int(start + i) for start, d in offsets for i in d.missing}

    def _read_rows(self, positions: np.ndarray, points: Points, out=None) -> np.ndarray:
        owner = np.searchsorted(self.starts, positions, side="right") - 1
        out = None
        for d in np.unique(owner):
            where = np.flatnonzero(owner == d)
            rows = self.datasets[d]._read_rows(positions[where] - self.starts[d], points)
            if out is None:
                out = np.empty((len(positions), *rows.shape[1:]), dtype=rows.dtype)
            out[where] = rows
        return out

    def _statistics(self, prefix: str, what: str) -> dict[str, np.ndarray]:
        return self.datasets[0]._statistics(prefix, what)  # as anemoi: the first dataset's


class Cutout(_Combined):
    """A regional dataset inside a global one: the regional points first, then the global points
    farther than `min_distance_km` from every regional point (`global_mask` marks those kept).

    The default distance is the regional grid's median spacing, so the global points under the
    regional domain go and those around it stay.
    """

    def __init__(self, regional: Dataset, outer: Dataset, min_distance_km: float | None = None):
        super().__init__([regional, outer])
        for name, a, b in (("variables", regional.variables, outer.variables),):
            if list(a) != list(b):
                raise ValueError(
                    f"cutout needs the same {name} in both datasets: {a} and {b}; use select"
                )
        if not np.array_equal(regional.dates, outer.dates):
            raise ValueError("cutout needs the same dates in both datasets; select start/end")
        regional_xyz = _unit_vectors(regional.latitudes, regional.longitudes)
        tree = cKDTree(regional_xyz)
        if min_distance_km is None:
            spacing, _ = tree.query(regional_xyz, k=2)
            min_distance_km = float(np.median(spacing[:, 1])) * EARTH_RADIUS_KM
        distance, _ = tree.query(_unit_vectors(outer.latitudes, outer.longitudes))
        self.min_distance_km = float(min_distance_km)
        self.global_mask = distance * EARTH_RADIUS_KM > self.min_distance_km
        self.global_points = np.flatnonzero(self.global_mask)
        self.regional_points = len(regional.latitudes)
        self.dates, self.variables = regional.dates, regional.variables
        self.latitudes = np.concatenate([regional.latitudes, outer.latitudes[self.global_mask]])
        self.longitudes = np.concatenate([regional.longitudes, outer.longitudes[self.global_mask]])
        self.field_shape = (len(self.latitudes),)
        self.missing = regional.missing | outer.missing
        # as anemoi records a cut-out: the points of each part, regional first (the graph's
        # data nodes turn it into `cutout_mask`)
        self.metadata = {
            **regional.metadata,
            "grids": [self.regional_points, len(self.global_points)],
        }

    def _read_rows(self, positions: np.ndarray, points: Points, out=None) -> np.ndarray:
        wanted = np.arange(len(self.latitudes))[slice(None) if points is None else points]
        inner = wanted[wanted < self.regional_points]
        outer = self.global_points[wanted[wanted >= self.regional_points] - self.regional_points]
        parts = [self.datasets[0]._read_rows(positions, inner)]
        parts.append(self.datasets[1]._read_rows(positions, outer))
        return np.concatenate(parts, axis=-1)

    def _statistics(self, prefix: str, what: str) -> dict[str, np.ndarray]:
        return self.datasets[1]._statistics(prefix, what)  # the global one covers both


def _unit_vectors(latitudes: np.ndarray, longitudes: np.ndarray) -> np.ndarray:
    lat, lon = np.radians(latitudes), np.radians(longitudes)
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)
