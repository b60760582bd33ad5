"""Recipes from GRIB (the real ERA5 sample), and from NetCDF/zarr files with levels, ensemble
members, constant fields and unstructured grids (small synthetic files written here)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import squall.data.recipes as recipes
from squall.cli import main
from squall.data.recipes import RecipeError, create_dataset, load_recipe
from squall.data.store import open_dataset

REPO = Path(__file__).resolve().parents[2]
GRIB = REPO / "samples" / "era5-2mt-2019-03-uk.grib"
TIMES = np.datetime64("2020-01-01", "ns") + np.arange(8) * np.timedelta64(6, "h")


def _recipe(sources, **extra) -> dict:
    return {
        "description": "synthetic test source",
        "frequency": "6h",
        "statistics": {"start": "2020-01-01", "end": "2020-01-01T18"},
        "sources": sources,
        **extra,
    }


@pytest.fixture(scope="module")
def era5(tmp_path_factory):
    out = tmp_path_factory.mktemp("grib") / "era5.zarr"
    return open_dataset(create_dataset(REPO / "configs/datasets/era5_uk_2t.yaml", out, REPO))


def test_grib_sample_becomes_six_hourly_2t(era5):
    assert era5.variables == ["2t"] and len(era5) == 124 and era5.field_shape == (33, 49)
    assert str(era5.dates[1]) == "2019-03-01T06:00:00" and era5.resolution == "0.25"
    source = xr.open_dataset(GRIB, engine="cfgrib", backend_kwargs={"indexpath": ""})
    expected = source["t2m"].isel(time=6).values.ravel()  # hourly file: step 6 is 06Z
    np.testing.assert_array_equal(era5[1][0, 0], expected)
    assert era5.latitudes[0] == 58.0 and era5.longitudes[0] == -10.0
    assert era5.metadata["statistics_end_date"] == "2019-03-20T18:00:00"
    assert 270 < era5.statistics["mean"][0] < 290
    assert era5.statistics_tendencies("12h")["stdev"][0] > 0
    assert "Copernicus" in era5.metadata["attribution"]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """NetCDF with pressure levels and members, a constant field, an unstructured zarr."""
    root = tmp_path_factory.mktemp("files")
    lat, lon = np.array([10.0, 0.0, -10.0]), np.array([0.0, 10.0, 20.0, 30.0])
    rng = np.random.default_rng(0)
    t = rng.normal(250, 10, (8, 2, 3, 3, 4)).astype(np.float32)  # time, member, level, lat, lon
    xr.Dataset(
        {"t": (("time", "number", "isobaricInhPa", "latitude", "longitude"), t, {"units": "K"})},
        coords={"time": TIMES, "number": [0, 1], "isobaricInhPa": [500, 850, 1000],
                "latitude": lat, "longitude": lon},
    ).to_netcdf(root / "t.nc")  # fmt: skip
    xr.Dataset(
        {"z": (("latitude", "longitude"), np.arange(12.0).reshape(3, 4), {"units": "m2 s-2"})},
        coords={"latitude": lat, "longitude": lon},
    ).to_netcdf(root / "orography.nc")
    points = rng.uniform(-1, 1, (8, 5)).astype(np.float32)
    xr.Dataset(
        {"tp": (("time", "values"), points)},
        coords={"time": TIMES, "latitude": ("values", np.linspace(-50, 50, 5)),
                "longitude": ("values", np.linspace(0, 300, 5))},
    ).to_zarr(root / "tp.zarr", zarr_format=2, consolidated=True)  # fmt: skip
    return root


def test_levels_members_and_constants(files, tmp_path):
    recipe = _recipe(
        [
            {"path": str(files / "t.nc"), "variable": "t", "levels": [850, 500]},
            {"path": str(files / "orography.nc"), "variable": "z", "constant": True},
        ]
    )
    ds = open_dataset(create_dataset(recipe, tmp_path / "levels.zarr"))
    assert ds.variables == ["t_850", "t_500", "z"] and ds.ensembles == 2
    source = xr.open_dataset(files / "t.nc")["t"]
    np.testing.assert_array_equal(
        ds[3][0, 1], source.isel(time=3, number=1).sel(isobaricInhPa=850).values.ravel()
    )
    np.testing.assert_array_equal(ds[7][2, 0], np.arange(12.0))  # the constant, every date
    np.testing.assert_array_equal(ds[7][2, 1], np.arange(12.0))  # and for every member
    assert ds.metadata["variables_metadata"]["z"]["constant_in_time"] is True
    assert ds.metadata["variables_metadata"]["t_500"]["units"] == "K"
    with pytest.raises(RecipeError, match=r"levels \[500, 850, 1000\].*`levels`"):
        create_dataset(_recipe([{"path": str(files / "t.nc"), "variable": "t"}]), tmp_path / "x")
    with pytest.raises(RecipeError, match=r"no level\(s\) \[700\]"):
        bad = {"path": str(files / "t.nc"), "variable": "t", "levels": [700]}
        create_dataset(_recipe([bad]), tmp_path / "x")
    with pytest.raises(RecipeError, match="constant: true"):
        create_dataset(
            _recipe([{"path": str(files / "orography.nc"), "variable": "z"}]), tmp_path / "x"
        )


def test_unstructured_zarr_source(files, tmp_path):
    ds = open_dataset(
        create_dataset(
            _recipe([{"path": str(files / "tp.zarr"), "variable": "tp"}]), tmp_path / "u.zarr"
        )
    )
    assert ds.variables == ["tp"] and ds.field_shape == (5,) and ds.resolution is None
    np.testing.assert_array_equal(ds.longitudes, np.linspace(0, 300, 5))
    np.testing.assert_array_equal(ds[4][0, 0], xr.open_zarr(files / "tp.zarr")["tp"].values[4])


def test_interrupted_build_resumes_where_it_stopped(tmp_path, monkeypatch):
    recipe = load_recipe(REPO / "configs/datasets/storm.yaml")
    out = tmp_path / "storm.zarr"
    complete = open_dataset(create_dataset(recipe, tmp_path / "complete.zarr", REPO))
    real_check, calls = recipes._check_partial_nan, []

    def interrupt_at_date_40(row, date, fields):
        calls.append(date)
        if len(calls) == 41:
            raise KeyboardInterrupt
        real_check(row, date, fields)

    monkeypatch.setattr(recipes, "_check_partial_nan", interrupt_at_date_40)
    with pytest.raises(KeyboardInterrupt):
        create_dataset(recipe, out, REPO)
    assert not out.exists() and (tmp_path / "storm.zarr.partial").exists()
    calls.clear()
    resumed = open_dataset(create_dataset(recipe, out, REPO, resume=True))
    assert len(calls) == 24  # only the 24 dates not yet written were read again
    np.testing.assert_array_equal(
        resumed.read(slice(None), allow_missing=True),
        complete.read(slice(None), allow_missing=True),
    )
    assert resumed.missing == complete.missing == {17, 36, 37}
    np.testing.assert_array_equal(resumed.statistics["stdev"], complete.statistics["stdev"])
    assert not (tmp_path / "storm.zarr.partial").exists()


def test_resume_refuses_a_partial_store_of_another_recipe(tmp_path, monkeypatch):
    recipe = load_recipe(REPO / "configs/datasets/storm.yaml")
    monkeypatch.setattr(
        recipes, "_check_partial_nan", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt)
    )
    with pytest.raises(KeyboardInterrupt):
        create_dataset(recipe, tmp_path / "s.zarr", REPO)
    monkeypatch.undo()
    with pytest.raises(ValueError, match="run without --resume"):
        create_dataset(recipe | {"end": "1996-01-19"}, tmp_path / "s.zarr", REPO, resume=True)
    assert open_dataset(create_dataset(recipe, tmp_path / "s.zarr", REPO)).shape[0] == 64


def test_cli_create_and_inspect(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    out = tmp_path / "storm.zarr"
    assert main(["dataset", "create", "--quiet", "configs/datasets/storm.yaml", str(out)]) == 0
    assert main(["dataset", "inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "64 dates every 6h" in text and "1996-01-09T06:00:00" in text
    assert "field shape (33, 22)" in text and "msl" in text
    # v_surface is absent (all NaN) on two dates of 726 points each.
    assert [line.split()[-1] for line in text.splitlines() if "v_surface" in line] == ["1452"]
    shutil.rmtree(out)
