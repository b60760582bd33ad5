"""Recipes: the storm NetCDF files in samples/ become an anemoi-layout dataset."""

from __future__ import annotations

from pathlib import Path

import netCDF4
import numpy as np
import pytest
import yaml

from squall.data.recipes import RecipeError, create_dataset, load_recipe
from squall.data.store import open_dataset

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "configs" / "datasets" / "storm.yaml"


@pytest.fixture(scope="module")
def storm(tmp_path_factory):
    path = create_dataset(RECIPE, tmp_path_factory.mktemp("recipe") / "storm.zarr", base_dir=REPO)
    return open_dataset(path)


def _file_values(name: str, variable: str) -> np.ndarray:
    """(64, 33, 22) straight from the sample file, cropped to lon index 7..28."""
    with netCDF4.Dataset(REPO / "samples" / name) as nc:
        return np.ma.filled(nc.variables[variable][:, :, 7:29].astype(np.float32), np.nan)


def test_values_are_the_files_values_cropped(storm):
    msl = storm.read(slice(None), allow_missing=True)[:, 0, 0].reshape(64, 33, 22)
    np.testing.assert_array_equal(msl, _file_values("Pstorm.cdf", "p"))
    v500 = storm.read(slice(None), allow_missing=True)[:, 5, 0].reshape(64, 33, 22)
    np.testing.assert_array_equal(v500, _file_values("V500storm.cdf", "v"))


def test_grid_is_the_cropped_lat_lon_grid(storm):
    assert storm.latitudes[0] == 20.0 and storm.latitudes[-1] == 60.0
    assert storm.longitudes[0] == -122.5 and storm.longitudes[-1] == -70.0
    assert np.unique(storm.longitudes).size == 22 and np.unique(storm.latitudes).size == 33
    # row-major: the 22 longitudes of the first latitude come first
    np.testing.assert_array_equal(storm.latitudes[:22], 20.0)


def test_missing_steps_become_missing_dates_without_invented_values(storm):
    assert storm.missing == {17, 36, 37}
    assert storm.metadata["missing_dates_by_variable"] == {
        "t_surface": ["1996-01-09T06:00:00"],
        "v_surface": ["1996-01-09T06:00:00", "1996-01-14T06:00:00"],
        "v_500": ["1996-01-14T00:00:00"],
    }
    step36 = storm.read(36, allow_missing=True)
    assert np.isnan(step36[storm.name_to_index["v_500"]]).all()
    np.testing.assert_array_equal(  # the variables that exist keep their real values
        step36[storm.name_to_index["msl"], 0], _file_values("Pstorm.cdf", "p")[36].ravel()
    )


def test_metadata_names_units_and_sources(storm):
    meta = storm.metadata["variables_metadata"]
    assert [meta[name]["units"] for name in storm.variables] == ["Pa", "K"] + ["m s-1"] * 4
    assert meta["t_surface"]["source"] == {"path": "samples/Tstorm.cdf", "variable": "t"}
    assert "height" in meta["u_surface"]["long_name"]
    assert "geocat-datafiles" in storm.metadata["attribution"]


def test_paths_resolve_against_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    path = create_dataset("configs/datasets/storm.yaml", tmp_path / "cwd.zarr")
    assert len(open_dataset(path)) == 64
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="run from the repository root or pass base_dir"):
        create_dataset(RECIPE, tmp_path / "elsewhere.zarr")


def test_start_end_and_subsampling(tmp_path):
    recipe = load_recipe(RECIPE)
    recipe.update(start="1996-01-10", end="1996-01-19", frequency="12h", tendency_deltas=["12h"])
    ds = open_dataset(create_dataset(recipe, tmp_path / "12h.zarr", base_dir=REPO))
    assert len(ds) == 20 and str(ds.dates[0]) == "1996-01-10T00:00:00"
    assert ds.metadata["frequency"] == "12h" and ds.missing == {8}  # 1996-01-14T00 (v_500)


def test_crop_that_keeps_masked_points_is_refused(tmp_path):
    recipe = load_recipe(RECIPE)
    recipe["crop"] = {"lat": [0, 32], "lon": [0, 28]}
    with pytest.raises(RecipeError, match="NaN/fill points .* narrow the recipe's `crop`"):
        create_dataset(recipe, tmp_path / "masked.zarr", base_dir=REPO)
    assert not list(tmp_path.iterdir())
    recipe["crop"] = {"lon": [7, 36]}
    with pytest.raises(RecipeError, match="inside 0..35"):
        create_dataset(recipe, tmp_path / "bad.zarr", base_dir=REPO)


def test_recipe_typos_are_named(tmp_path):
    recipe = yaml.safe_load(RECIPE.read_text())
    recipe["statistic"] = recipe.pop("statistics")
    with pytest.raises(RecipeError, match="'statistic'.*did you mean 'statistics'"):
        load_recipe(recipe)
    recipe = yaml.safe_load(RECIPE.read_text())
    recipe["sources"][0]["variable"] = "pressure"
    with pytest.raises(RecipeError, match="has no variable 'pressure'"):
        create_dataset(recipe, tmp_path / "x.zarr", base_dir=REPO)


def test_cf_time_axis_is_decoded(tmp_path):
    """A source with CF time units ("hours since ...") needs no `time:` block."""
    with netCDF4.Dataset(REPO / "samples" / "Pstorm.cdf") as source:
        values, lat, lon = source["p"][:], source["lat"][:], source["lon"][:]
    with netCDF4.Dataset(tmp_path / "p_cf.nc", "w") as nc:
        for name, size in (("time", 64), ("lat", 33), ("lon", 36)):
            nc.createDimension(name, size)
        time = nc.createVariable("time", "i4", ("time",))
        time.units = "hours since 1996-01-05 00:00:00"
        time[:] = np.arange(64) * 6
        nc.createVariable("lat", "f4", ("lat",))[:] = lat
        nc.createVariable("lon", "f4", ("lon",))[:] = lon
        nc.createVariable("p", "f4", ("time", "lat", "lon"), fill_value=-9999.0)[:] = values
    recipe = load_recipe(RECIPE)
    del recipe["time"]
    recipe["sources"] = [recipe["sources"][0] | {"path": str(tmp_path / "p_cf.nc")}]
    ds = open_dataset(create_dataset(recipe, tmp_path / "cf.zarr"))
    assert len(ds) == 64 and str(ds.dates[-1]) == "1996-01-20T18:00:00" and not ds.missing


def test_recipe_stores_computed_forcings_as_the_model_computes_them(tmp_path):
    import torch

    from squall.models.computed_forcings import computed_forcings

    repo = Path(__file__).resolve().parents[2]
    recipe = yaml.safe_load((repo / "configs/datasets/storm.yaml").read_text())
    recipe["sources"] = recipe["sources"][:1]
    recipe["computed_forcings"] = ["cos_latitude", "insolation"]
    dataset = open_dataset(create_dataset(recipe, tmp_path / "s.zarr", repo))
    assert dataset.variables == ["msl", "cos_latitude", "insolation"]
    assert dataset.metadata["variables_metadata"]["insolation"]["computed_forcing"]
    when = int(dataset.dates[10].astype("datetime64[s]").astype(np.int64))
    expected = computed_forcings(
        ["cos_latitude", "insolation"],
        torch.tensor([when]),
        torch.from_numpy(np.deg2rad(dataset.latitudes)),
        torch.from_numpy(np.deg2rad(dataset.longitudes)),
    )[0].numpy()
    np.testing.assert_allclose(dataset[10][1:, 0].T, expected, rtol=1e-5, atol=1e-6)
    recipe["computed_forcings"] = ["moonlight"]
    with pytest.raises(RecipeError, match="moonlight"):
        create_dataset(recipe, tmp_path / "t.zarr", repo)


def test_a_derived_recipe_is_sent_to_dataset_derive():
    with pytest.raises(RecipeError, match="squall dataset derive"):
        load_recipe(REPO / "configs/datasets/storm_cutout.yaml")
