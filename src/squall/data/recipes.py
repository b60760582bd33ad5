"""Dataset recipes: NetCDF, GRIB or zarr sources -> an anemoi-layout store, date by date.

A recipe is YAML (see configs/datasets/storm.yaml, era5_uk_2t.yaml). Relative source paths are
resolved against `base_dir` when given, else against the current working directory: the pipeline
runs from the repository root, so recipes name files like `samples/Pstorm.cdf`. Crops are
INCLUSIVE index ranges [first, last] into the files' latitude and longitude axes.

Memory stays bounded by one date of all sources, whatever their size: each date is read,
checked and written on its own, then the statistics are accumulated from the written store.
An interrupted build resumes with `resume=True` (`squall dataset create --resume`).

A date where a variable is entirely NaN after the crop is a missing value of that variable; the
date is then listed in `missing_dates` (anemoi: the whole date is unusable) while the variables
that do exist keep their real values. Nothing is ever interpolated or invented.
"""

from __future__ import annotations

import datetime
import difflib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import yaml
import zarr
from tqdm import tqdm

from squall.data.computed_fields import ComputedForcingFields
from squall.data.coordinates import coordinates_hash
from squall.data.dates import check_regular, frequency_to_timedelta, iso, window_indices
from squall.data.sources import RecipeError, SourceField, read_source
from squall.data.statistics import compute_statistics
from squall.data.store_write import StoreBuilder

__all__ = ["RecipeError", "create_dataset", "load_recipe"]

RECIPE_KEYS = set(
    "description licence attribution frequency start end time crop statistics tendency_deltas "
    "resolution sources computed_forcings".split()
)
SOURCE_KEYS = {"path", "variable", "name", "units", "long_name", "format", "levels", "constant"}
TIME_KEYS = {"reference_variable", "reference_format", "offset_variable", "offset_units"}


def load_recipe(recipe: dict | str | os.PathLike) -> dict[str, Any]:
    if isinstance(recipe, dict):
        loaded = recipe
    else:
        path = Path(recipe)
        if not path.exists():
            raise FileNotFoundError(f"no recipe at {path}; recipes live in configs/datasets/")
        loaded = yaml.safe_load(path.read_text())
    if not isinstance(loaded, dict):
        raise RecipeError(f"a recipe must be a mapping of keys, got {type(loaded).__name__}")
    if "derived" in loaded:
        raise RecipeError(
            "this is a derived dataset recipe (`derived:`, a combination of other stores): "
            "build it with `squall dataset derive RECIPE OUT`, not `squall dataset create`"
        )
    # The statistics period is required: defaulting to all dates would leak test dates.
    required = ("description", "frequency", "statistics", "sources")
    _check_keys(loaded, RECIPE_KEYS, "recipe", required=required)
    if not loaded["sources"]:
        raise RecipeError("the recipe lists no sources")
    for i, source in enumerate(loaded["sources"]):
        _check_keys(source, SOURCE_KEYS, f"sources[{i}]", required=("path", "variable"))
    if "time" in loaded:
        _check_keys(
            loaded["time"], TIME_KEYS, "time", required=tuple(TIME_KEYS - {"reference_format"})
        )
    _check_keys(loaded["statistics"], {"start", "end"}, "statistics", ("start", "end"))
    return loaded


def _check_keys(mapping: Any, allowed: set[str], where: str, required: tuple[str, ...]) -> None:
    if not isinstance(mapping, dict):
        raise RecipeError(f"{where} must be a mapping, got {mapping!r}")
    for key in mapping:
        if key not in allowed:
            near = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            hint = f"; did you mean {near[0]!r}?" if near else f"; allowed: {sorted(allowed)}"
            raise RecipeError(f"unknown key {key!r} in {where}{hint}")
    absent = [key for key in required if key not in mapping]
    if absent:
        raise RecipeError(f"{where} lacks required key(s) {absent}")


def create_dataset(
    recipe: dict | str | os.PathLike,
    out_path: str | os.PathLike,
    base_dir: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = False,
) -> Path:
    """Build the store described by `recipe` at `out_path` (moved into place once complete).

    `resume` continues an interrupted build of the same recipe; `progress` shows a progress bar.
    """
    recipe = load_recipe(recipe)
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    crop = recipe.get("crop", {})
    paths = [_source_path(base, spec) for spec in recipe["sources"]]
    fields = [
        read_source(path, spec, recipe.get("time"), crop)
        for path, spec in zip(paths, recipe["sources"], strict=True)
    ]
    reference = _check_same_grid(fields)
    computed = None
    if recipe.get("computed_forcings"):
        try:
            computed = ComputedForcingFields(
                recipe["computed_forcings"], reference.latitudes, reference.longitudes
            )
        except ValueError as error:
            raise RecipeError(str(error)) from None
    names = [name for field in fields for name in field.names] + (
        computed.names if computed else []
    )
    if len(set(names)) != len(names):
        raise RecipeError(f"output names must be unique, got {names}")
    members = _members(fields)
    frequency = frequency_to_timedelta(recipe["frequency"])
    timed = [field for field in fields if field.times is not None]
    if not timed:
        raise RecipeError("every source is constant: at least one must have a time axis")
    dates = _target_dates(timed[0].times, recipe.get("start"), recipe.get("end"), frequency)
    check_regular(dates, frequency, where=f"source {timed[0].path}")
    for field in timed:
        _check_covers(field, dates)

    builder = StoreBuilder(
        out_path,
        dates=dates,
        latitudes=reference.latitudes,
        longitudes=reference.longitudes,
        variables=names,
        ensembles=members,
        frequency=frequency,
        fingerprint=_fingerprint(recipe, paths),
        resume=resume,
    )
    try:
        _write_dates(builder, fields + ([computed] if computed else []), dates, members, progress)
        missing_by_variable = _missing_by_variable(builder, names)
    except RecipeError:
        builder.abandon()  # a recipe error needs a new recipe, not a resume
        raise
    missing = sorted({d for days in missing_by_variable.values() for d in days})
    view = _WrittenStore(
        builder.group["data"],
        dates,
        {int(i) for i in np.flatnonzero(np.isin(dates, np.array(missing, "M8[s]")))},
        names,
        frequency,
        coordinates_hash(reference.latitudes, reference.longitudes),
    )
    period, deltas = recipe["statistics"], recipe.get("tendency_deltas", [recipe["frequency"]])
    stats = compute_statistics(view, period["start"], period["end"], tendency_deltas=deltas)
    return builder.finish(
        field_shape=reference.field_shape,
        missing_dates=[np.datetime64(d, "s") for d in missing],
        variables_metadata=_variables_metadata(fields, recipe["sources"])
        | (computed.metadata() if computed else {}),
        statistics=stats,
        tendency_statistics=stats["tendencies"],
        resolution=recipe.get("resolution") or _resolution(reference),
        recipe=recipe,
        extra_attrs={
            "description": recipe["description"],
            "licence": recipe.get("licence"),
            "attribution": recipe.get("attribution"),
            "missing_dates_by_variable": {k: v for k, v in missing_by_variable.items() if v},
        },
    )


class _WrittenStore:
    """The partial store's data seen through the interface compute_statistics reads."""

    def __init__(self, data, dates, missing, variables, frequency, grid_hash):
        self._data, self.dates, self.missing = data, dates, missing
        self.variables, self.frequency, self.coordinates_hash = variables, frequency, grid_hash

    def __getitem__(self, index: int) -> np.ndarray:
        return np.asarray(self._data[index])


def _source_path(base: Path, spec: dict) -> Path:
    path = Path(spec["path"])
    path = path if path.is_absolute() else base / path
    if not path.exists():
        raise FileNotFoundError(
            f"source file {path} not found (relative paths are resolved "
            f"against {base}; run from the repository root or pass base_dir)"
        )
    return path


def _check_same_grid(fields: list[SourceField]) -> SourceField:
    reference = fields[0]
    for field in fields[1:]:
        if not (
            np.array_equal(field.latitudes, reference.latitudes)
            and np.array_equal(field.longitudes, reference.longitudes)
        ):
            raise RecipeError(
                f"{field.path} and {reference.path} are on different grids (after "
                "the crop); every source must share one grid"
            )
    return reference


def _members(fields: list[SourceField]) -> int:
    counts = {field.members for field in fields} - {1}
    if len(counts) > 1:
        raise RecipeError(f"sources have different numbers of ensemble members: {sorted(counts)}")
    return counts.pop() if counts else 1  # a single-member source is shared by all members


def _fingerprint(recipe: dict, paths: list[Path]) -> str:
    """What a resumed build must match: the recipe and the sources' sizes and times."""
    files = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths]
    text = json.dumps([recipe, files], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _write_dates(builder, fields, dates, members: int, progress: bool) -> None:
    todo = [i for i in range(len(dates)) if i not in builder.written]
    bar = tqdm(
        total=len(dates),
        initial=len(dates) - len(todo),
        desc=f"dataset {builder.path.name}",
        unit="date",
        disable=not progress,
    )
    with bar:
        for i in todo:
            rows = []
            for field in fields:
                values = field.read(dates[i])
                rows.append(np.broadcast_to(values, (values.shape[0], members, values.shape[2])))
            row = np.concatenate(rows, axis=0)
            _check_partial_nan(row, dates[i], fields)
            builder.write(i, row)
            bar.update()


def _check_partial_nan(row: np.ndarray, date, fields: list[SourceField]) -> None:
    """A field is either whole (present) or entirely NaN (missing); masked points are an error."""
    nan = np.isnan(row).reshape(row.shape[0], -1)
    partial = nan.any(axis=1) & ~nan.all(axis=1)
    if partial.any():
        j = int(np.flatnonzero(partial)[0])
        owners = [(field, name) for field in fields for name in field.names]
        field, name = owners[j]
        raise RecipeError(
            f"{field.path}: {name} has {int(nan[j].sum())} NaN/fill points at "
            f"{iso(date)} after the crop (masked points remain); narrow the recipe's "
            "`crop` so that no masked point is left"
        )


def _missing_by_variable(builder: StoreBuilder, names: list[str]) -> dict[str, list[str]]:
    """Dates on which each variable is entirely NaN, read back one date at a time."""
    data: zarr.Array = builder.group["data"]
    missing: dict[str, list[str]] = {name: [] for name in names}
    for i, date in enumerate(builder.dates):
        row = np.asarray(data[i]).reshape(len(names), -1)
        for j in np.flatnonzero(np.isnan(row).all(axis=1)):
            missing[names[j]].append(iso(date))
    return missing


def _variables_metadata(fields: list[SourceField], specs: list[dict]) -> dict[str, dict]:
    metadata = {}
    for field, spec in zip(fields, specs, strict=True):
        for name in field.names:
            metadata[name] = {
                "units": spec.get("units") or field.units,
                "long_name": spec.get("long_name"),
                "source": {"path": str(spec["path"]), "variable": spec["variable"]},
                "constant_in_time": field.times is None,
            }
    return metadata


def _target_dates(times, start, end, frequency: datetime.timedelta) -> np.ndarray:
    """The source times inside start..end, every `frequency` from the first one."""
    times = np.sort(times)
    first, stop = window_indices(times, start, end)
    times = times[first:stop]
    step = np.timedelta64(int(frequency.total_seconds()), "s")
    return times[(times - times[0]) % step == np.timedelta64(0, "s")]


def _check_covers(field: SourceField, dates: np.ndarray) -> None:
    absent = [iso(d) for d in np.setdiff1d(dates, field.times)]
    if absent:
        raise RecipeError(
            f"{field.path} has no step at {absent[:3]} ({len(absent)} dates): "
            "every source must cover the dataset's dates"
        )


def _resolution(field: SourceField) -> str | None:
    """Grid spacing in degrees, "1.25x2.5" for lat x lon when they differ."""
    if len(field.field_shape) != 2:
        return None
    lat2d = field.latitudes.reshape(field.field_shape)
    lon2d = field.longitudes.reshape(field.field_shape)
    spacing = []
    for axis in (lat2d[:, 0], lon2d[0, :]):
        steps = np.unique(np.round(np.abs(np.diff(axis)), 6))
        if len(steps) != 1:
            return None
        spacing.append(f"{steps[0]:g}")
    return spacing[0] if spacing[0] == spacing[1] else "x".join(spacing)
