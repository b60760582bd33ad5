"""What every dataset view offers: lazy reads of dates, coordinates, variables, statistics.

A store on disk (squall.data.store), and the selections and combinations built on it
(squall.data.views), all answer the same questions; a view reads from its parent only the dates
(and grid points) it is asked for, so nothing is loaded until a sample needs it.
"""

from __future__ import annotations

import datetime
from functools import cached_property
from pathlib import Path

import numpy as np

from squall.data.coordinates import coordinates_hash
from squall.data.dates import frequency_to_string, iso

STATISTICS = ("mean", "stdev", "minimum", "maximum")
Points = np.ndarray | slice | None  # grid points to read: indices, a slice, or all


class MissingDateError(LookupError):
    """A date listed in `missing_dates` was read: its values are (partly) absent."""


class Dataset:
    """A read-only, lazy dataset: `ds[i]` is (variables, ensembles, points) float32 for date i.

    `ds[i:j]` or `ds[[i, j]]` add a leading date axis; `ds[i, columns]` indexes further.
    Reading a missing date raises MissingDateError (its values are partly NaN);
    `read(..., allow_missing=True)` returns them anyway, and `read(..., points=...)` reads only
    some grid points (a model-parallel shard).
    """

    path: Path  # the store this view reads (the first one, for combinations)

    # --- what a concrete view provides -------------------------------------------------------
    dates: np.ndarray
    variables: list[str]
    latitudes: np.ndarray
    longitudes: np.ndarray
    frequency: datetime.timedelta
    missing: set[int]
    metadata: dict
    field_shape: tuple[int, ...]
    ensembles: int

    def _read_rows(self, positions: np.ndarray, points: Points, out=None) -> np.ndarray:
        """(len(positions), variables, ensembles, points) for sorted or unsorted positions.

        `out`, a float32 array of that shape, may be filled and returned instead of a new
        array (a reader reusing one buffer avoids the page faults of a fresh allocation).
        """
        raise NotImplementedError

    def _statistics(self, prefix: str, what: str) -> dict[str, np.ndarray]:
        raise NotImplementedError

    # --- shared behaviour --------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.dates)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({str(self.path)!r}, {iso(self.dates[0])}..{iso(self.dates[-1])}"
            f", {len(self)} dates, {len(self.variables)} variables, {self.shape[-1]} points)"
        )

    def __getitem__(self, index) -> np.ndarray:
        return self.read(index)

    def read(self, index, *, allow_missing: bool = False, points: Points = None) -> np.ndarray:
        """Values for a date index, slice, list of indices, or a tuple (dates, ...) of them."""
        if isinstance(index, tuple):
            rows = self.read(index[0], allow_missing=allow_missing, points=points)
            leading = () if isinstance(index[0], int | np.integer) else (slice(None),)
            return rows[leading + index[1:]]
        if isinstance(index, int | np.integer):
            position = range(len(self))[int(index)]  # IndexError and negative indices for free
            self._check_missing([position], allow_missing)
            return self._read_rows(np.array([position]), points)[0]
        if isinstance(index, slice):
            positions = np.arange(len(self))[index]
        else:
            positions = np.arange(len(self))[np.asarray(index, dtype=np.int64)]
        self._check_missing(positions, allow_missing)
        return self._read_rows(positions, points)

    def read_into(self, positions, out: np.ndarray, points: Points = None) -> np.ndarray:
        """Present dates at `positions` into `out` where the view can (else a new array)."""
        positions = np.arange(len(self))[np.asarray(positions, dtype=np.int64)]
        self._check_missing(positions, allow_missing=False)
        return self._read_rows(positions, points, out=out)

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
        return (len(self), len(self.variables), self.ensembles, len(self.latitudes))

    @cached_property
    def name_to_index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.variables)}

    @property
    def resolution(self) -> str | None:
        return self.metadata.get("resolution")

    @cached_property
    def coordinates_hash(self) -> str:
        return coordinates_hash(self.latitudes, self.longitudes)

    @property
    def statistics(self) -> dict[str, np.ndarray]:
        """Per-variable statistics stored with the data (computed over its statistics period)."""
        return self._statistics("", "statistics")

    def statistics_tendencies(self, delta: str | datetime.timedelta = "6h") -> dict:
        """Statistics of x(t + delta) - x(t) stored with the dataset."""
        name = frequency_to_string(delta)
        return self._statistics(f"statistics_tendencies_{name}_", f"{name} tendency statistics")
