"""Forcings computed from the valid time and the node coordinates, on the model's device.

They live with the model (not the data pipeline) so an exported model makes its own and needs
only the dates it predicts for.
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
    values = {
        "cos_local_time": torch.cos(local_phase),
        "sin_local_time": torch.sin(local_phase),
        "cos_julian_day": torch.cos(year_phase).expand(shape),
        "sin_julian_day": torch.sin(year_phase).expand(shape),
        "cos_latitude": torch.cos(lat).expand(shape),
        "sin_latitude": torch.sin(lat).expand(shape),
        "cos_longitude": torch.cos(lon).expand(shape),
        "sin_longitude": torch.sin(lon).expand(shape),
    }
    if not names:
        return torch.zeros(*shape, 0, dtype=torch.float32, device=latitudes.device)
    return torch.stack([values[name] for name in names], dim=-1).to(torch.float32)
