"""`squall dataset inspect`: a readable summary of a dataset (variables, dates, grid, missing
dates, NaN counts and statistics), read one date at a time."""

from __future__ import annotations

import os

import numpy as np

from squall.data.base import Dataset
from squall.data.dates import frequency_to_string, iso
from squall.data.store import open_dataset


def nan_counts(dataset: Dataset) -> np.ndarray:
    """NaN values per variable over all dates (missing dates included), date by date."""
    counts = np.zeros(len(dataset.variables), dtype=np.int64)
    for i in range(len(dataset)):
        row = dataset.read(i, allow_missing=True)
        counts += np.isnan(row).reshape(len(dataset.variables), -1).sum(axis=1)
    return counts


def describe_dataset(path: str | os.PathLike | dict, count_nans: bool = True) -> str:
    dataset = open_dataset(path)
    meta = dataset.metadata
    lines = [
        f"dataset: {dataset.path}",
        f"  description: {' '.join(str(meta.get('description', '-')).split())}",
        f"  dates: {iso(dataset.dates[0])} .. {iso(dataset.dates[-1])}, {len(dataset)} dates "
        f"every {frequency_to_string(dataset.frequency)}",
        f"  missing dates ({len(dataset.missing)}): "
        + (", ".join(iso(dataset.dates[i]) for i in sorted(dataset.missing)) or "none"),
        f"  grid: {dataset.shape[-1]} points, field shape {tuple(dataset.field_shape)}, "
        f"resolution {dataset.resolution}, latitudes {dataset.latitudes.min():g}.."
        f"{dataset.latitudes.max():g}, longitudes {dataset.longitudes.min():g}.."
        f"{dataset.longitudes.max():g}",
        f"  ensemble members: {dataset.ensembles}",
        f"  statistics period: {meta.get('statistics_start_date', '-')} .. "
        f"{meta.get('statistics_end_date', '-')}",
    ]
    try:
        stats = dataset.statistics
    except KeyError:
        stats = None
    nans = nan_counts(dataset) if count_nans else None
    units = meta.get("variables_metadata", {})
    header = (
        f"  {'variable':<16}{'units':<10}{'mean':>14}{'stdev':>14}{'minimum':>14}{'maximum':>14}"
    )
    lines.append(header + ("" if nans is None else f"{'NaN values':>12}"))
    for j, name in enumerate(dataset.variables):
        row = f"  {name:<16}{str(units.get(name, {}).get('units') or '-'):<10}"
        if stats is None:
            row += f"{'-':>14}" * 4
        else:
            row += "".join(
                f"{stats[key][j]:>14.6g}" for key in ("mean", "stdev", "minimum", "maximum")
            )
        lines.append(row + ("" if nans is None else f"{int(nans[j]):>12}"))
    return "\n".join(lines)
