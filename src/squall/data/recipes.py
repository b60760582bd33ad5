"""Dataset recipes: NetCDF sources (one variable per file) -> an anemoi-layout store.

A recipe is YAML (see configs/datasets/storm.yaml). Relative source paths are resolved against
`base_dir` when given, else against the current working directory: the pipeline runs from the
repository root, so recipes name files like `samples/Pstorm.cdf`. Crops are INCLUSIVE index
ranges [first, last] into the files' latitude and longitude axes.

A step where a variable is entirely NaN after the crop is a missing value of that variable; the
date is then listed in `missing_dates` (anemoi: the whole date is unusable) while the variables
that do exist keep their real values. Nothing is ever interpolated or invented.
"""

from __future__ import annotations

import datetime
import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import yaml

from squall.data.coordinates import coordinates_hash
from squall.data.dates import check_regular, frequency_to_timedelta, iso, window_indices
from squall.data.statistics import compute_statistics
from squall.data.store import write_dataset

RECIPE_KEYS = set(
    "description licence attribution frequency start end time crop statistics tendency_deltas "
    "resolution sources".split()
)
SOURCE_KEYS = {"path", "variable", "name", "units", "long_name"}
TIME_KEYS = {"reference_variable", "reference_format", "offset_variable", "offset_units"}
OFFSET_UNITS = {"seconds": "s", "minutes": "m", "hours": "h", "days": "D"}


class RecipeError(ValueError):
    """The recipe, or the files it names, cannot make a dataset; the message says why."""


@dataclass
class _Source:
    """One source variable, cropped: values (times, lat, lon) float32 with NaN for fill values."""

    path: Path
    name: str
    times: np.ndarray
    latitudes: np.ndarray
    longitudes: np.ndarray
    values: np.ndarray


@dataclass
class _InMemoryDataset:
    """The assembled arrays, seen through the Dataset interface compute_statistics reads."""

    data: np.ndarray
    dates: np.ndarray
    missing: set[int]
    variables: list[str]
    frequency: datetime.timedelta
    coordinates_hash: str

    def __getitem__(self, index: int) -> np.ndarray:
        return self.data[index]


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
    # The statistics period is required: defaulting to all dates would leak test dates.
    required = ("description", "frequency", "statistics", "sources")
    _check_keys(loaded, RECIPE_KEYS, "recipe", required=required)
    if not loaded["sources"]:
        raise RecipeError("the recipe lists no sources")
    for i, source in enumerate(loaded["sources"]):
        _check_keys(source, SOURCE_KEYS, f"sources[{i}]", required=("path", "variable", "name"))
    if "time" in loaded:
        _check_keys(
            loaded["time"], TIME_KEYS, "time", required=tuple(TIME_KEYS - {"reference_format"})
        )
    _check_keys(loaded["statistics"], {"start", "end"}, "statistics", ("start", "end"))
    names = [source["name"] for source in loaded["sources"]]
    if len(set(names)) != len(names):
        raise RecipeError(f"output names must be unique, got {names}")
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
) -> Path:
    """Build the store described by `recipe` at `out_path` (written atomically)."""
    recipe = load_recipe(recipe)
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    crop = recipe.get("crop", {})
    sources = [_read_source(base, source, recipe.get("time"), crop) for source in recipe["sources"]]
    frequency = frequency_to_timedelta(recipe["frequency"])
    reference = sources[0]
    for source in sources[1:]:
        if not (
            np.array_equal(source.latitudes, reference.latitudes)
            and np.array_equal(source.longitudes, reference.longitudes)
        ):
            raise RecipeError(
                f"{source.path} and {reference.path} are on different grids (after "
                "the crop); every source must share one grid"
            )

    dates = _target_dates(reference.times, recipe.get("start"), recipe.get("end"), frequency)
    check_regular(dates, frequency, where=f"source {reference.path}")
    data = np.stack([_values_on(source, dates) for source in sources], axis=1)  # (T, V, lat, lon)
    field_shape = data.shape[2:]
    data = data.reshape(len(dates), len(sources), 1, -1)  # one ensemble member, flattened grid

    lat2d, lon2d = np.meshgrid(reference.latitudes, reference.longitudes, indexing="ij")
    latitudes, longitudes = lat2d.ravel(), lon2d.ravel()  # row-major, like the flattened data
    names = [source.name for source in sources]
    missing_by_variable = _missing_by_variable(data, dates, sources)
    missing = sorted({d for days in missing_by_variable.values() for d in days})

    view = _InMemoryDataset(
        data=data,
        dates=dates,
        missing={int(i) for i in np.flatnonzero(np.isin(dates, np.array(missing, "M8[s]")))},
        variables=names,
        frequency=frequency,
        coordinates_hash=coordinates_hash(latitudes, longitudes),
    )
    period, deltas = recipe["statistics"], recipe.get("tendency_deltas", [recipe["frequency"]])
    stats = compute_statistics(view, period["start"], period["end"], tendency_deltas=deltas)

    metadata = {
        source.name: {
            "units": spec.get("units"),
            "long_name": spec.get("long_name"),
            "source": {"path": str(spec["path"]), "variable": spec["variable"]},
        }
        for source, spec in zip(sources, recipe["sources"], strict=True)
    }
    return write_dataset(
        out_path,
        data=data,
        dates=dates,
        latitudes=latitudes,
        longitudes=longitudes,
        variables=names,
        frequency=frequency,
        field_shape=field_shape,
        missing_dates=[np.datetime64(d, "s") for d in missing],
        variables_metadata=metadata,
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


def _read_source(base: Path, spec: dict, time_spec: dict | None, crop: dict) -> _Source:
    path = Path(spec["path"])
    path = path if path.is_absolute() else base / path
    if not path.exists():
        raise FileNotFoundError(
            f"source file {path} not found (relative paths are resolved "
            f"against {base}; run from the repository root or pass base_dir)"
        )
    with netCDF4.Dataset(path) as nc:
        if spec["variable"] not in nc.variables:
            raise RecipeError(
                f"{path} has no variable {spec['variable']!r}; it has {sorted(nc.variables)}"
            )
        variable = nc.variables[spec["variable"]]
        if variable.ndim != 3 or not (
            "lat" in variable.dimensions[1] and "lon" in variable.dimensions[2]
        ):
            raise RecipeError(
                f"{path}:{spec['variable']} has dimensions {variable.dimensions}; "
                "squall reads (time, lat, lon) variables"
            )
        file_units = getattr(variable, "units", None)
        if file_units is not None and spec.get("units") not in (None, file_units):
            raise RecipeError(
                f"{path}:{spec['variable']} is in {file_units!r}, the recipe says "
                f"{spec['units']!r}; fix the recipe's units"
            )
        lat_rows = _crop_range(crop.get("lat"), variable.shape[1], "lat")
        lon_cols = _crop_range(crop.get("lon"), variable.shape[2], "lon")
        values = np.ma.filled(variable[:, lat_rows, lon_cols].astype(np.float32), np.nan)
        return _Source(
            path=path,
            name=spec["name"],
            times=_read_times(nc, variable, time_spec, path),
            latitudes=np.asarray(nc.variables[variable.dimensions[1]][lat_rows], np.float64),
            longitudes=np.asarray(nc.variables[variable.dimensions[2]][lon_cols], np.float64),
            values=values,
        )


def _crop_range(bounds: list[int] | None, size: int, axis: str) -> slice:
    if bounds is None:
        return slice(0, size)
    first, last = (int(b) for b in bounds)
    if not 0 <= first <= last < size:
        raise RecipeError(
            f"crop {axis}: [{first}, {last}] is not an inclusive index range inside 0..{size - 1}"
        )
    return slice(first, last + 1)


def _read_times(nc, variable, time_spec: dict | None, path: Path) -> np.ndarray:
    """Times of the variable's first axis, as datetime64[s]."""
    if time_spec is not None:  # a reference time plus offsets, as in files without CF units
        raw = np.ma.getdata(nc.variables[time_spec["reference_variable"]][:])
        text = (
            b"".join(raw.ravel().tolist()).decode().strip("\x00 ")
            if raw.dtype.kind == "S"
            else str(raw)
        )
        fmt = time_spec.get("reference_format", "%Y-%m-%dT%H:%M:%S")
        try:
            reference = datetime.datetime.strptime(text, fmt)
        except ValueError as error:
            raise RecipeError(
                f"{path}: reference time {text!r} does not match time.reference_format {fmt!r}"
            ) from error
        unit = OFFSET_UNITS.get(time_spec["offset_units"])
        if unit is None:
            raise RecipeError(f"time.offset_units must be one of {sorted(OFFSET_UNITS)}")
        offsets = np.asarray(nc.variables[time_spec["offset_variable"]][:], dtype=np.int64)
        return np.datetime64(reference, "s") + offsets.astype(f"timedelta64[{unit}]")
    axis = nc.variables.get(variable.dimensions[0])
    if axis is None or "since" not in getattr(axis, "units", ""):
        raise RecipeError(
            f"{path}: the time axis has no CF units ('hours since ...'); describe "
            "it with a `time:` block (reference_variable, offset_variable, "
            "offset_units) in the recipe"
        )
    times = netCDF4.num2date(
        axis[:],
        axis.units,
        getattr(axis, "calendar", "standard"),
        only_use_cftime_datetimes=False,
        only_use_python_datetimes=True,
    )
    return np.array([np.datetime64(t, "s") for t in times], dtype="datetime64[s]")


def _target_dates(times, start, end, frequency: datetime.timedelta) -> np.ndarray:
    """The source times inside start..end, every `frequency` from the first one."""
    times = np.sort(times)
    first, stop = window_indices(times, start, end)
    times = times[first:stop]
    step = np.timedelta64(int(frequency.total_seconds()), "s")
    return times[(times - times[0]) % step == np.timedelta64(0, "s")]


def _values_on(source: _Source, dates: np.ndarray) -> np.ndarray:
    positions = {t: i for i, t in enumerate(source.times)}
    absent = [iso(d) for d in dates if d not in positions]
    if absent:
        raise RecipeError(
            f"{source.path} has no step at {absent[:3]} ({len(absent)} dates): "
            "every source must cover the dataset's dates"
        )
    return source.values[[positions[d] for d in dates]]


def _missing_by_variable(data, dates, sources) -> dict[str, list[str]]:
    """Dates on which each variable is entirely NaN; a partly NaN field is an error."""
    missing = {}
    for j, source in enumerate(sources):
        nan = np.isnan(data[:, j]).reshape(len(dates), -1)
        whole, partial = nan.all(axis=1), nan.any(axis=1) & ~nan.all(axis=1)
        if partial.any():
            i = int(np.flatnonzero(partial)[0])
            raise RecipeError(
                f"{source.path}: {source.name} has {int(nan[i].sum())} NaN/fill points at "
                f"{iso(dates[i])} after the crop (masked points remain); narrow the recipe's "
                "`crop` so that no masked point is left"
            )
        missing[source.name] = [iso(d) for d in dates[whole]]
    return missing


def _resolution(source: _Source) -> str | None:
    """Grid spacing in degrees, "1.25x2.5" for lat x lon when they differ."""
    spacing = []
    for axis in (source.latitudes, source.longitudes):
        steps = np.unique(np.round(np.abs(np.diff(axis)), 6))
        if len(steps) != 1:
            return None
        spacing.append(f"{steps[0]:g}")
    return spacing[0] if spacing[0] == spacing[1] else "x".join(spacing)
