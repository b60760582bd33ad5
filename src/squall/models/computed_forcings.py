"""Forcings computed from the valid time and the node coordinates, on the model's device.

They live with the model (not the data pipeline) so an exported model makes its own and needs
only the dates it predicts for.

Insolation is the top-of-atmosphere incoming solar radiation divided by the solar constant:
cos(solar zenith angle), clipped at 0 at night, times the Earth-Sun distance factor (r0/r)^2.
The solar position follows Spencer (1971), "Fourier series representation of the position of the
Sun", Search 2(5), 172, as given in NOAA's "General Solar Position Calculations": with the
fractional-year angle g = 2 pi (day_of_year - 1 + (hour - 12) / 24) / 365,
  declination d = 0.006918 - 0.399912 cos g + 0.070257 sin g - 0.006758 cos 2g
                  + 0.000907 sin 2g - 0.002697 cos 3g + 0.00148 sin 3g          (radians)
  equation of time (minutes) = 229.18 (0.000075 + 0.001868 cos g - 0.032077 sin g
                  - 0.014615 cos 2g - 0.040849 sin 2g)
  (r0/r)^2 = 1.000110 + 0.034221 cos g + 0.001280 sin g + 0.000719 cos 2g + 0.000077 sin 2g
  hour angle h = 2 pi (UTC minutes + equation of time) / 1440 + longitude - pi
  cos(zenith) = sin(lat) sin(d) + cos(lat) cos(d) cos(h).
The year here is the mean tropical year from 2000-01-01 (day_of_year drifts < 1 day), which moves
the declination by at most 0.4 degree.
"""

from __future__ import annotations

import math

import torch

SECONDS_PER_DAY = 86400.0
# Mean tropical year; the seasonal phase drifts < 1 day from the calendar day of year.
SECONDS_PER_YEAR = 365.2425 * SECONDS_PER_DAY
# 2000-01-01T00Z: phase zero of the seasonal cycle is January 1st.
EPOCH_2000 = 946684800.0

NAMES = (
    "cos_local_time",
    "sin_local_time",
    "cos_julian_day",
    "sin_julian_day",
    "cos_latitude",
    "sin_latitude",
    "cos_longitude",
    "sin_longitude",
    "cos_solar_zenith_angle",
    "insolation",
)


def computed_forcings(
    names: list[str], epoch_seconds: torch.Tensor, latitudes: torch.Tensor, longitudes: torch.Tensor
) -> torch.Tensor:
    """(batch,) valid times in seconds since 1970, (grid,) radians -> (batch, grid, names)."""
    unknown = [name for name in names if name not in NAMES]
    if unknown:
        raise ValueError(f"unknown computed forcings {unknown}; available: {list(NAMES)}")
    seconds = epoch_seconds.to(torch.float64)[:, None]
    lat, lon = latitudes.to(torch.float64)[None, :], longitudes.to(torch.float64)[None, :]
    utc_day_fraction = torch.remainder(seconds, SECONDS_PER_DAY) / SECONDS_PER_DAY
    local_phase = 2 * math.pi * utc_day_fraction + lon  # one radian of longitude = 1/2pi day
    year_phase = (
        2 * math.pi * torch.remainder(seconds - EPOCH_2000, SECONDS_PER_YEAR) / (SECONDS_PER_YEAR)
    )
    shape = (seconds.shape[0], lat.shape[1])
    cos_zenith, distance_factor = _solar_geometry(seconds, lat, lon)
    values = {
        "cos_local_time": torch.cos(local_phase),
        "sin_local_time": torch.sin(local_phase),
        "cos_julian_day": torch.cos(year_phase).expand(shape),
        "sin_julian_day": torch.sin(year_phase).expand(shape),
        "cos_latitude": torch.cos(lat).expand(shape),
        "sin_latitude": torch.sin(lat).expand(shape),
        "cos_longitude": torch.cos(lon).expand(shape),
        "sin_longitude": torch.sin(lon).expand(shape),
        "cos_solar_zenith_angle": cos_zenith.expand(shape),
        "insolation": (torch.clamp(cos_zenith, min=0.0) * distance_factor).expand(shape),
    }
    if not names:
        return torch.zeros(*shape, 0, dtype=torch.float32, device=latitudes.device)
    return torch.stack([values[name] for name in names], dim=-1).to(torch.float32)


def fractional_year(seconds: torch.Tensor) -> torch.Tensor:
    """Spencer's angle g (radians) for times in seconds since 1970, from the mean tropical year."""
    day = torch.remainder(seconds - EPOCH_2000, SECONDS_PER_YEAR) / SECONDS_PER_DAY
    return 2 * math.pi * (day - 0.5) / 365.0  # day counts from Jan 1 00Z; Spencer's from noon


def solar_declination(seconds: torch.Tensor) -> torch.Tensor:
    """Solar declination in radians (Spencer 1971) at times in seconds since 1970."""
    g = fractional_year(seconds.to(torch.float64))
    return (
        0.006918
        - 0.399912 * torch.cos(g)
        + 0.070257 * torch.sin(g)
        - 0.006758 * torch.cos(2 * g)
        + 0.000907 * torch.sin(2 * g)
        - 0.002697 * torch.cos(3 * g)
        + 0.00148 * torch.sin(3 * g)
    )


def _solar_geometry(seconds: torch.Tensor, lat: torch.Tensor, lon: torch.Tensor):
    """cos(solar zenith angle) (time, grid) and the Earth-Sun distance factor (time, 1)."""
    g = fractional_year(seconds)
    equation_of_time = 229.18 * (
        0.000075
        + 0.001868 * torch.cos(g)
        - 0.032077 * torch.sin(g)
        - 0.014615 * torch.cos(2 * g)
        - 0.040849 * torch.sin(2 * g)
    )
    utc_minutes = torch.remainder(seconds, SECONDS_PER_DAY) / 60.0
    hour_angle = 2 * math.pi * (utc_minutes + equation_of_time) / 1440.0 + lon - math.pi
    declination = solar_declination(seconds)
    cos_zenith = torch.sin(lat) * torch.sin(declination) + torch.cos(lat) * torch.cos(
        declination
    ) * torch.cos(hour_angle)
    distance_factor = (
        1.000110
        + 0.034221 * torch.cos(g)
        + 0.001280 * torch.sin(g)
        + 0.000719 * torch.cos(2 * g)
        + 0.000077 * torch.sin(2 * g)
    )
    return cos_zenith, distance_factor
