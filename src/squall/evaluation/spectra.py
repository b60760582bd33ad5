"""Zonal power spectra of fields on a regular lat-lon grid (global or regional).

Each latitude row is detrended and tapered with a Hann window (a regional row is not periodic:
without the taper its ends leak power into every wavenumber), transformed with an FFT, and the
power is averaged over rows and forecasts. Wavelengths are given in km at the mean latitude.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import detrend
from scipy.signal.windows import hann

EARTH_RADIUS_KM = 6371.0


def zonal_power_spectrum(
    fields: np.ndarray, latitudes: np.ndarray, longitudes: np.ndarray, field_shape
) -> tuple[np.ndarray, np.ndarray]:
    """fields (n, point) -> (wavelength_km (k,), power (k,)) for wavenumbers 1..nlon/2."""
    nlat, nlon = field_shape
    grid = fields.reshape(-1, nlat, nlon)
    grid = grid[~np.isnan(grid).any(axis=(1, 2))]
    if len(grid) == 0:
        raise ValueError("no complete field to take a spectrum of")
    rows = detrend(grid, axis=-1) * hann(nlon, sym=False)
    power = (np.abs(np.fft.rfft(rows, axis=-1)) ** 2).mean(axis=(0, 1))[1:]
    spacing = np.deg2rad(np.abs(np.diff(longitudes.reshape(nlat, nlon)[0])).mean())
    mean_lat = np.deg2rad(np.abs(latitudes).mean())
    width_km = nlon * spacing * EARTH_RADIUS_KM * np.cos(mean_lat)
    wavenumbers = np.arange(1, len(power) + 1)
    return width_km / wavenumbers, power
