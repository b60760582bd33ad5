"""Normalisation statistics, computed only over the training period, and the check that keeps
that period apart from validation and test dates."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from squall.data.dates import (
    DateLike,
    date_bounds,
    frequency_to_string,
    frequency_to_timedelta,
    iso,
    window_indices,
)
from squall.data.store import open_dataset

STATISTICS = ("mean", "stdev", "minimum", "maximum")


class DatasetLike(Protocol):
    """What compute_statistics reads: a squall.data.store.Dataset, or an in-memory equivalent."""

    dates: np.ndarray
    missing: set[int]
    variables: list[str]
    frequency: Any
    coordinates_hash: str

    def __getitem__(self, index: int) -> np.ndarray: ...


class StatisticsPeriodError(ValueError):
    """The statistics period overlaps dates that must stay unseen (validation, test)."""


class _Accumulator:
    """Per-variable count, mean, sum of squared deviations (M2), min and max in float64.

    Each date's fields are reduced to (count, mean, M2) and merged with the running totals by
    Chan et al.'s pairwise update, so the variance of a field like pressure (1e5 Pa, spread
    1e3 Pa) keeps its digits over any number of dates, and memory is one date.
    """

    def __init__(self, n_variables: int):
        self.count = np.zeros(n_variables, dtype=np.int64)
        self.mean = np.zeros(n_variables)
        self.m2 = np.zeros(n_variables)
        self.minimum = np.full(n_variables, np.inf)
        self.maximum = np.full(n_variables, -np.inf)

    def add(self, field: np.ndarray) -> None:
        values = np.asarray(field, dtype=np.float64).reshape(field.shape[0], -1)  # (vars, values)
        finite = np.isfinite(values)  # NaN-aware: absent values do not count
        count = finite.sum(axis=1)
        safe = np.maximum(count, 1)
        mean = np.where(finite, values, 0.0).sum(axis=1) / safe
        m2 = (np.where(finite, values - mean[:, None], 0.0) ** 2).sum(axis=1)
        total = self.count + count
        delta = mean - self.mean
        weight = np.divide(count, total, out=np.zeros_like(mean), where=total > 0)
        self.mean = self.mean + delta * weight
        self.m2 = self.m2 + m2 + delta**2 * self.count * weight
        self.count = total
        self.minimum = np.minimum(self.minimum, np.where(finite, values, np.inf).min(axis=1))
        self.maximum = np.maximum(self.maximum, np.where(finite, values, -np.inf).max(axis=1))

    def result(self, variables: list[str], what: str) -> dict[str, np.ndarray]:
        empty = [name for name, n in zip(variables, self.count, strict=True) if n == 0]
        if empty:
            raise ValueError(f"no finite values of {empty} for the {what}: widen the period")
        return {
            "mean": self.mean.copy(),
            "stdev": np.sqrt(np.maximum(self.m2 / self.count, 0.0)),
            "minimum": self.minimum,
            "maximum": self.maximum,
        }


def compute_statistics(
    dataset: DatasetLike,
    start: DateLike,
    end: DateLike,
    tendency_deltas: tuple[str, ...] | list[str] = ("6h",),
) -> dict[str, Any]:
    """Per-variable mean/stdev (population)/minimum/maximum over start..end (inclusive), and the
    same for tendencies x(t + delta) - x(t) over pairs of dates both inside and both present.

    Missing dates are skipped; each date is read once, so a large store is never all in memory.
    """
    dates = np.asarray(dataset.dates).astype("datetime64[s]")
    first, stop = window_indices(dates, start, end)
    usable = [i for i in range(first, stop) if i not in dataset.missing]
    if not usable:
        raise ValueError(
            f"every date between {start} and {end} is missing: statistics need present dates"
        )
    frequency = frequency_to_timedelta(dataset.frequency)
    steps = {}
    for delta in tendency_deltas:
        ratio = frequency_to_timedelta(delta) / frequency
        if ratio < 1 or ratio != int(ratio):
            raise ValueError(
                f"tendency delta {delta!r} is not a whole multiple of the dataset frequency "
                f"{frequency_to_string(frequency)}"
            )
        steps[frequency_to_string(delta)] = int(ratio)

    n_variables = len(dataset.variables)
    states = _Accumulator(n_variables)
    tendencies = {delta: _Accumulator(n_variables) for delta in steps}
    pair_counts = dict.fromkeys(steps, 0)
    present = set(usable)
    previous: dict[int, np.ndarray] = {}  # the last few fields, enough for the largest delta
    largest = max(steps.values(), default=0)
    for i in usable:
        field = np.asarray(dataset[i], dtype=np.float64)
        states.add(field)
        for delta, step in steps.items():
            if i - step in present:
                tendencies[delta].add(field - previous[i - step])
                pair_counts[delta] += 1
        previous[i] = field
        previous = {k: v for k, v in previous.items() if k >= i - largest}

    stats: dict[str, Any] = {
        "period": {"start": iso(dates[first]), "end": iso(dates[stop - 1])},
        "variables": list(dataset.variables),
        "frequency": frequency_to_string(frequency),
        "count": len(usable),
        "missing_dates_skipped": [iso(dates[i]) for i in range(first, stop) if i not in present],
        **states.result(list(dataset.variables), "statistics"),
        "tendencies": {},
        "dataset_coordinates_hash": dataset.coordinates_hash,
    }
    for delta, accumulator in tendencies.items():
        if pair_counts[delta] == 0:
            raise ValueError(
                f"no pair of present dates {delta} apart between {start} and {end}: cannot "
                f"compute {delta} tendency statistics; widen the period or drop that delta"
            )
        stats["tendencies"][delta] = {
            "count": pair_counts[delta],
            **accumulator.result(list(dataset.variables), f"{delta} tendency statistics"),
        }
    return stats


def _to_json(stats: dict[str, Any]) -> dict[str, Any]:
    def convert(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: convert(item) for key, item in value.items()}
        if isinstance(value, np.ndarray | np.generic):
            return value.tolist()
        return value

    return convert(stats)


def write_statistics_json(stats: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write statistics as JSON atomically (temporary file, then rename)."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(_to_json(stats), indent=2) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_statistics(path: str | os.PathLike) -> dict[str, Any]:
    """Read a statistics JSON; per-variable values come back as float64 numpy arrays."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"no statistics file at {path}: compute it over the training period with "
            "`squall dataset statistics` (the pipeline's statistics rule)"
        )
    stats = json.loads(path.read_text())
    required = ("period", "variables", *STATISTICS)
    absent = [key for key in required if key not in stats]
    if absent:
        raise ValueError(f"{path} is not a squall statistics file: it lacks {absent}; recompute it")
    for group in (stats, *stats.get("tendencies", {}).values()):
        for name in STATISTICS:
            group[name] = np.asarray(group[name], dtype=np.float64)
    return stats


def check_statistics_period(
    stats: dict[str, Any], other_periods: dict[str, tuple[DateLike, DateLike]]
) -> None:
    """Refuse statistics whose period overlaps e.g. {"validation": (start, end), "test": ...}."""
    stats_start = date_bounds(stats["period"]["start"])[0]
    stats_stop = date_bounds(stats["period"]["end"])[1]
    for name, (start, end) in other_periods.items():
        other_start, other_stop = date_bounds(start)[0], date_bounds(end)[1]
        if stats_start < other_stop and other_start < stats_stop:
            raise StatisticsPeriodError(
                f"the statistics period {stats['period']['start']} .. {stats['period']['end']} "
                f"overlaps the {name} period {start} .. {end}: statistics must come from the "
                f"training dates only. Recompute them over a period that ends before {start}, or "
                f"move the {name} period."
            )


def create_statistics_file(
    dataset_path: str | os.PathLike,
    out_path: str | os.PathLike,
    start: DateLike,
    end: DateLike,
    tendency_deltas: list[str] | tuple[str, ...] | None = None,
    held_out: dict[str, tuple[DateLike, DateLike]] | None = None,
) -> Path:
    """The statistics stage: statistics of a store over the training period, written as JSON.

    `held_out` names periods the statistics must not see, e.g. {"validation": (start, end)}:
    a period start..end that overlaps one of them is refused before anything is read.
    """
    check_statistics_period({"period": {"start": start, "end": end}}, held_out or {})
    dataset = open_dataset(dataset_path)
    stats = compute_statistics(dataset, start, end, tuple(tendency_deltas or ("6h",)))
    return write_statistics_json(stats, out_path)
