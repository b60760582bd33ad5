"""Global grids generated from their definition: reduced Gaussian (octahedral O<N>, classic
N<N>) and HEALPix. Coordinates are returned in degrees, like a dataset's."""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

from squall.graphs.nodes import check_refinement


def gaussian_latitudes(half: int) -> np.ndarray:
    """The 2 * `half` Gaussian latitudes (degrees, north to south): the zeros of the Legendre
    polynomial P_{2 half}, found by Newton's method from their asymptotic positions."""
    count = 2 * half
    index = np.arange(1, count + 1)
    x = np.cos(np.pi * (index - 0.25) / (count + 0.5))  # north to south (x = sin latitude)
    for _ in range(100):
        previous, current = np.ones_like(x), x.copy()
        for degree in range(2, count + 1):  # three-term recurrence of P_n
            previous, current = (
                current,
                ((2 * degree - 1) * x * current - (degree - 1) * previous) / degree,
            )
        derivative = count * (x * current - previous) / (x * x - 1.0)
        step = current / derivative
        x -= step
        if np.abs(step).max() < 1e-15:
            break
    return np.degrees(np.arcsin(x))


def _points_per_latitude(name: str) -> np.ndarray:
    """Longitudes on each latitude, north to south, of grid `name` (o96, n320, ...)."""
    match = re.fullmatch(r"([oOnN])(\d+)", name.strip())
    if not match:
        raise ValueError(
            f"unknown reduced Gaussian grid {name!r}; use o<N> (octahedral, e.g. o96, o1280) "
            "or n<N> (classic reduced, e.g. n320)"
        )
    kind, half = match.group(1).lower(), int(match.group(2))
    if kind == "o":
        # Octahedral: 20 longitudes on the first latitude, 4 more on each one towards the equator.
        north = 20 + 4 * np.arange(half)
        return np.concatenate([north, north[::-1]])
    import eccodes  # the classic reduced grids are a table (ECMWF's pl array), kept by ecCodes

    try:
        handle = eccodes.codes_grib_new_from_samples(f"reduced_gg_pl_{half}_grib2")
    except Exception as error:  # eccodes raises its own error types
        raise ValueError(
            f"ecCodes has no classic reduced Gaussian grid N{half}; use one of N32, N48, N80, "
            "N96, N128, N160, N200, N256, N320, N400, N512, N640, N1024, N1280 or an "
            "octahedral o<N> grid"
        ) from error
    try:
        return np.asarray(eccodes.codes_get_array(handle, "pl"), dtype=np.int64)
    finally:
        eccodes.codes_release(handle)


@lru_cache(maxsize=4)
def reduced_gaussian_grid(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(latitudes, longitudes) in degrees of a reduced Gaussian grid, in the usual GRIB order:
    rows from north to south, longitudes from 0 eastwards on each row."""
    counts = _points_per_latitude(name)
    latitudes = gaussian_latitudes(len(counts) // 2)
    row = np.repeat(np.arange(len(counts)), counts)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = np.arange(counts.sum()) - start[row]
    longitudes = 360.0 * position / counts[row]
    lat, lon = latitudes[row], longitudes
    lat.flags.writeable = lon.flags.writeable = False
    return lat, lon


def healpix_grid(refinement: int) -> tuple[np.ndarray, np.ndarray]:
    """(latitudes, longitudes) in degrees of the 12 * 4**r HEALPix pixel centres (nside 2**r),
    in HEALPix ring order (north to south, eastwards along each ring)."""
    import healpy

    refinement = check_refinement(refinement, "HEALPix refinement")
    nside = 2**refinement
    lon, lat = healpy.pix2ang(nside, np.arange(12 * nside**2), lonlat=True)
    return lat, lon
