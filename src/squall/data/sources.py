"""Recipe sources read through xarray: NetCDF, GRIB (cfgrib/eccodes) and zarr, lazily.

A source is one variable of one file (or store), optionally at some levels; it becomes one
output variable per level, named `param_level` (`t_850`) or with the usual surface names (`2t`,
`10u`, `msl`). Grids are regular lat-lon (flattened row-major, optionally cropped) or
unstructured (one points dimension with latitude/longitude coordinates). An ensemble dimension
becomes the store's ensemble axis; a field without a time axis is a constant, repeated each date.
Values are read one date at a time, so memory does not grow with the source.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

LAT_NAMES = ("latitude", "lat")
LON_NAMES = ("longitude", "lon")
TIME_NAMES = ("valid_time", "time", "timestep", "date", "t")
MEMBER_NAMES = ("number", "member", "realization", "ensemble")
OFFSET_UNITS = {"seconds": "s", "minutes": "m", "hours": "h", "days": "D"}
# NetCDF short names of ERA5/cfgrib -> the GRIB short names anemoi uses.
SURFACE_NAMES = {"t2m": "2t", "d2m": "2d", "u10": "10u", "v10": "10v", "u100": "100u",
                 "v100": "100v", "si10": "10si"}  # fmt: skip
FORMATS = {".grib": "grib", ".grb": "grib", ".grib2": "grib", ".grb2": "grib", ".zarr": "zarr"}


class RecipeError(ValueError):
    """The recipe, or the files it names, cannot make a dataset; the message says why."""


def source_format(path: Path, spec: dict) -> str:
    return spec.get("format") or FORMATS.get(path.suffix.lower(), "netcdf")


def open_source_file(path: Path, fmt: str) -> xr.Dataset:
    if fmt == "grib":
        # indexpath "": no .idx file written next to a possibly read-only GRIB.
        return xr.open_dataset(path, engine="cfgrib", backend_kwargs={"indexpath": ""})
    if fmt == "zarr":
        return xr.open_zarr(path, decode_times=True)
    if fmt == "netcdf":
        return xr.open_dataset(path, engine="netcdf4", decode_times=True)
    raise RecipeError(f"source format {fmt!r} is not one of netcdf, grib, zarr")


@dataclass
class SourceField:
    """One source variable on the target grid: `read(date)` -> (levels, members, points)."""

    path: Path
    names: list[str]
    variable: xr.DataArray
    times: np.ndarray | None  # None for a constant field
    time_dim: str | None
    latitudes: np.ndarray
    longitudes: np.ndarray
    field_shape: tuple[int, ...]
    members: int
    units: str | None

    def read(self, date: np.datetime64) -> np.ndarray:
        field = self.variable
        if self.time_dim is not None:
            position = int(np.flatnonzero(self.times == date)[0])
            field = field.isel({self.time_dim: position})
        values = np.asarray(field.values, dtype=np.float32)  # (levels, members, *grid)
        return values.reshape(len(self.names), self.members, -1)


def read_source(path: Path, spec: dict, time_spec: dict | None, crop: dict) -> SourceField:
    """Open one recipe source lazily and describe its names, times and grid."""
    fmt = source_format(path, spec)
    opened = open_source_file(path, fmt)
    if spec["variable"] not in opened.data_vars:
        raise RecipeError(
            f"{path} has no variable {spec['variable']!r}; it has {sorted(opened.data_vars)}"
        )
    variable = opened[spec["variable"]]
    file_units = variable.attrs.get("units")
    if file_units is not None and spec.get("units") not in (None, file_units):
        raise RecipeError(
            f"{path}:{spec['variable']} is in {file_units!r}, the recipe says "
            f"{spec['units']!r}; fix the recipe's units"
        )
    lat_dim, lon_dim, point_dim = _grid_dims(variable, path)
    if point_dim is None:
        variable = variable.isel(
            {
                lat_dim: _crop_range(crop.get("lat"), variable.sizes[lat_dim], "lat"),
                lon_dim: _crop_range(crop.get("lon"), variable.sizes[lon_dim], "lon"),
            }
        )
        lats = np.asarray(variable[lat_dim].values, dtype=np.float64)
        lons = np.asarray(variable[lon_dim].values, dtype=np.float64)
        lat2d, lon2d = np.meshgrid(lats, lons, indexing="ij")
        latitudes, longitudes = lat2d.ravel(), lon2d.ravel()  # row-major, like the data
        field_shape: tuple[int, ...] = (len(lats), len(lons))
        grid = [lat_dim, lon_dim]
    else:
        if crop:
            raise RecipeError(f"{path}: `crop` applies to lat-lon grids; this one is unstructured")
        latitudes = np.asarray(variable[lat_dim].values, dtype=np.float64)
        longitudes = np.asarray(variable[lon_dim].values, dtype=np.float64)
        field_shape, grid = (len(latitudes),), [point_dim]

    time_dim = next((d for d in variable.dims if d in TIME_NAMES), None)
    constant = bool(spec.get("constant", False))
    if constant and time_dim is not None:
        if variable.sizes[time_dim] != 1:
            raise RecipeError(f"{path}:{spec['variable']} is marked constant but has times")
        variable, time_dim = variable.isel({time_dim: 0}), None
    if time_dim is None and not constant:
        raise RecipeError(
            f"{path}:{spec['variable']} has no time dimension (dims {variable.dims}); mark it "
            "`constant: true` if it is a constant field such as the orography"
        )
    times = None if time_dim is None else _times(opened, variable, time_dim, time_spec, path)

    member_dim = next((d for d in variable.dims if d in MEMBER_NAMES), None)
    if member_dim is None:
        variable = variable.expand_dims("_member")
        member_dim = "_member"
    level_dim, levels = _levels(variable, spec, path, {time_dim, member_dim, *grid})
    if level_dim is None:
        variable = variable.expand_dims("_level")
        level_dim = "_level"
    order = [d for d in (time_dim, level_dim, member_dim) if d is not None] + grid
    variable = variable.transpose(*order)
    if levels is not None and level_dim != "_level":
        variable = variable.sel({level_dim: levels})  # in the recipe's order
    base = spec.get("name") or _short_name(variable, spec["variable"])
    names = [base] if levels is None else [f"{base}_{_level_text(v)}" for v in levels]
    return SourceField(
        path=path,
        names=names,
        variable=variable,
        times=times,
        time_dim=time_dim,
        latitudes=latitudes,
        longitudes=longitudes,
        field_shape=field_shape,
        members=int(variable.sizes[member_dim]),
        units=file_units or spec.get("units"),
    )


def _grid_dims(variable: xr.DataArray, path: Path) -> tuple[str, str, str | None]:
    lat = next((n for n in LAT_NAMES if n in variable.dims), None)
    lon = next((n for n in LON_NAMES if n in variable.dims), None)
    if lat and lon:
        return lat, lon, None
    lat = next((n for n in LAT_NAMES if n in variable.coords), None)
    lon = next((n for n in LON_NAMES if n in variable.coords), None)
    if lat and lon and variable[lat].ndim == 1 and variable[lat].dims == variable[lon].dims:
        return lat, lon, variable[lat].dims[0]  # unstructured: coordinates along a points dim
    raise RecipeError(
        f"{path}: cannot find the grid of {variable.name!r} (dims {variable.dims}); squall reads "
        "lat/lon (or latitude/longitude) dimensions, or one points dimension with latitude and "
        "longitude coordinates"
    )


def _levels(variable, spec: dict, path: Path, known: set) -> tuple[str | None, list | None]:
    extra = [d for d in variable.dims if d not in known]
    wanted = spec.get("levels")
    if not extra:
        if wanted is None:
            return None, None
        scalar = next((c for c in variable.coords if variable[c].ndim == 0 and
                       ("level" in c or "isobaric" in c)), None)  # fmt: skip
        if scalar is not None and [float(variable[scalar])] == [float(w) for w in wanted]:
            return None, list(wanted)  # a file holding one level: name it
        raise RecipeError(f"{path}:{spec['variable']} has no level dimension to select {wanted}")
    if len(extra) > 1:
        raise RecipeError(f"{path}:{spec['variable']} has several extra dimensions {extra}")
    dim = extra[0]
    available = variable[dim].values.tolist() if dim in variable.coords else None
    if wanted is None:
        if variable.sizes[dim] == 1:
            return dim, None
        raise RecipeError(
            f"{path}:{spec['variable']} has levels {available} along {dim!r}: list the ones "
            "you want in the source's `levels`"
        )
    absent = [w for w in wanted if available is None or w not in available]
    if absent:
        raise RecipeError(f"{path}:{spec['variable']} has no level(s) {absent}; it has {available}")
    return dim, list(wanted)


def _level_text(level: Any) -> str:
    return f"{level:g}" if isinstance(level, float) else str(level)


def _short_name(variable: xr.DataArray, name: str) -> str:
    short = variable.attrs.get("GRIB_shortName")
    if short and short != "~":
        return str(short)
    return SURFACE_NAMES.get(name, name)


def _crop_range(bounds: list[int] | None, size: int, axis: str) -> slice:
    if bounds is None:
        return slice(0, size)
    first, last = (int(b) for b in bounds)
    if not 0 <= first <= last < size:
        raise RecipeError(
            f"crop {axis}: [{first}, {last}] is not an inclusive index range inside 0..{size - 1}"
        )
    return slice(first, last + 1)


def _times(opened, variable, time_dim: str, time_spec: dict | None, path: Path) -> np.ndarray:
    """Times along `time_dim` as datetime64[s]: CF-decoded, GRIB valid_time, or a `time:` block."""
    if time_spec is not None:  # a reference time plus offsets, as in files without CF units
        raw = np.asarray(opened[time_spec["reference_variable"]].values)
        text = b"".join(raw.ravel().tolist()).decode() if raw.dtype.kind == "S" else str(raw)
        text = text.strip("\x00 ")
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
        offsets = np.asarray(opened[time_spec["offset_variable"]].values, dtype=np.int64)
        return np.datetime64(reference, "s") + offsets.astype(f"timedelta64[{unit}]")
    for name in ("valid_time", time_dim):
        if name in variable.coords and variable[name].dims == (time_dim,):
            values = variable[name].values
            if np.issubdtype(values.dtype, np.datetime64):
                return values.astype("datetime64[s]")
    raise RecipeError(
        f"{path}: the time axis has no CF units ('hours since ...'); describe "
        "it with a `time:` block (reference_variable, offset_variable, "
        "offset_units) in the recipe"
    )
