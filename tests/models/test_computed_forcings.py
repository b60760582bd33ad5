"""Computed forcings against known solar geometry (solstices, equinox, polar day and night)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from squall.models.computed_forcings import NAMES, computed_forcings, solar_declination


def _seconds(*isos: str) -> torch.Tensor:
    return torch.tensor([np.datetime64(t, "s").astype(np.int64) for t in isos])


def _forcing(name: str, times: torch.Tensor, lat_deg, lon_deg) -> np.ndarray:
    lat = torch.tensor(np.radians(np.atleast_1d(lat_deg)), dtype=torch.float32)
    lon = torch.tensor(np.radians(np.atleast_1d(lon_deg)), dtype=torch.float32)
    return computed_forcings([name], times, lat, lon)[..., 0].numpy()


@pytest.mark.parametrize(
    ("when", "degrees"),
    [
        ("2020-06-20T21:44", 23.44),  # June solstice (astronomical almanac time)
        ("2020-12-21T10:02", -23.44),  # December solstice
        ("2020-03-20T03:50", 0.0),  # March equinox
        ("2021-09-22T19:21", 0.0),  # September equinox
    ],
)
def test_declination_at_solstices_and_equinoxes(when, degrees):
    declination = math.degrees(float(solar_declination(_seconds(when))[0]))
    assert declination == pytest.approx(degrees, abs=0.5)


def test_insolation_is_zero_at_night_and_one_under_the_sun():
    day = _seconds(*[f"2020-03-20T{h:02d}:00" for h in range(24)])
    equator = _forcing("insolation", day, 0.0, 0.0)[:, 0]
    assert equator[0] == 0.0 and equator[23] == 0.0  # midnight at Greenwich
    assert 0.98 < equator.max() <= 1.02 and int(np.argmax(equator)) == 12  # noon, sun overhead
    # Local noon moves with longitude: at 90E the maximum is at 06 UTC.
    assert int(np.argmax(_forcing("insolation", day, 0.0, 90.0)[:, 0])) == 6


def test_polar_night_and_midnight_sun():
    december = _seconds(*[f"2020-12-21T{h:02d}:00" for h in range(24)])
    june = _seconds(*[f"2020-06-20T{h:02d}:00" for h in range(24)])
    assert (_forcing("insolation", december, 80.0, 0.0) == 0).all()
    assert (_forcing("insolation", june, 80.0, 0.0) > 0).all()
    # At the pole at the June solstice the sun stands 23.44 deg high all day;
    # (r0/r)^2 is about 0.967 near aphelion.
    pole = _forcing("insolation", june, 90.0, 0.0)
    expected = math.sin(math.radians(23.44)) * 0.967
    np.testing.assert_allclose(pole, expected, atol=0.01)


def test_all_names_have_the_batch_and_grid_shape():
    times = _seconds("2020-01-01T00", "2020-07-01T12")
    lat = torch.linspace(-1.5, 1.5, 5)
    values = computed_forcings(list(NAMES), times, lat, torch.zeros(5))
    assert values.shape == (2, 5, len(NAMES)) and values.dtype == torch.float32
    assert torch.isfinite(values).all()
    with pytest.raises(ValueError, match="unknown computed forcings"):
        computed_forcings(["insolatoin"], times, lat, torch.zeros(5))
