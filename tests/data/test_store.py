"""The anemoi-layout store, on the real storm sample (configs/datasets/storm.yaml)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import zarr

from squall.data.recipes import create_dataset
from squall.data.store import MissingDateError, open_dataset, write_dataset

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "configs" / "datasets" / "storm.yaml"
VARIABLES = ["msl", "t_surface", "u_surface", "v_surface", "u_500", "v_500"]


@pytest.fixture(scope="module")
def storm(tmp_path_factory) -> Path:
    return create_dataset(RECIPE, tmp_path_factory.mktemp("store") / "storm.zarr", base_dir=REPO)


def _arrays_of(path: Path) -> dict:
    """Everything write_dataset needs, read back from a store (real values, NaN on missing)."""
    ds = open_dataset(path)
    return dict(
        data=ds.read(slice(None), allow_missing=True),
        dates=ds.dates,
        latitudes=ds.latitudes,
        longitudes=ds.longitudes,
        variables=ds.variables,
        frequency="6h",
        field_shape=ds.field_shape,
        missing_dates=[ds.dates[i] for i in sorted(ds.missing)],
    )


def test_storm_dates_variables_grid_and_missing(storm):
    ds = open_dataset(storm)
    assert len(ds) == 64 and ds.shape == (64, 6, 1, 726)
    assert ds.variables == VARIABLES and ds.name_to_index["u_500"] == 4
    assert str(ds.dates[0]) == "1996-01-05T00:00:00" and str(ds.dates[-1]) == "1996-01-20T18:00:00"
    assert (np.diff(ds.dates) == np.timedelta64(6, "h")).all()
    assert ds.frequency.total_seconds() == 6 * 3600
    assert ds.field_shape == (33, 22) and ds.resolution == "1.25x2.5"
    assert ds.missing == {17, 36, 37}
    present = [i for i in range(len(ds)) if i not in ds.missing]
    assert np.isfinite(ds.read(present)).all()
    assert len(ds.coordinates_hash) == 16


def test_missing_dates_raise_unless_allowed(storm):
    ds = open_dataset(storm)
    with pytest.raises(MissingDateError, match="1996-01-09T06:00:00"):
        ds[17]
    with pytest.raises(MissingDateError):
        ds[10:20]
    step17 = ds.read(17, allow_missing=True)
    # t and v are absent at step 17; the variables that exist keep their real values.
    absent = {ds.name_to_index["t_surface"], ds.name_to_index["v_surface"]}
    for j in range(6):
        assert np.isnan(step17[j]).all() if j in absent else np.isfinite(step17[j]).all()


def test_indexing_reads_the_requested_dates(storm):
    ds = open_dataset(storm)
    assert ds[0].shape == (6, 1, 726) and ds[0].dtype == np.float32
    assert ds[0:3].shape == (3, 6, 1, 726)
    np.testing.assert_array_equal(ds[0:3][2], ds[2])
    np.testing.assert_array_equal(ds[-1], ds[63])
    np.testing.assert_array_equal(ds[[5, 2]], np.stack([ds[5], ds[2]]))
    np.testing.assert_array_equal(ds[40:50:3], np.stack([ds[i] for i in (40, 43, 46, 49)]))
    np.testing.assert_array_equal(ds[3, 0], ds[3][0])
    with pytest.raises(IndexError):
        ds[64]


def test_layout_matches_anemoi(storm):
    assert (storm / ".zgroup").exists() and (storm / "data" / ".zarray").exists()
    group = zarr.open_group(storm, mode="r")
    data = group["data"]
    assert data.dtype == np.float32 and data.shape == (64, 6, 1, 726)
    assert data.chunks == (1, 6, 1, 726)  # one date per chunk
    assert group["dates"].dtype == np.dtype("datetime64[s]")
    assert group["latitudes"].dtype == np.float64 and group["longitudes"].shape == (726,)
    for name in ("mean", "stdev", "minimum", "maximum"):
        assert group[name].shape == (6,)
        assert group[f"statistics_tendencies_6h_{name}"].shape == (6,)
    assert data.attrs["_ARRAY_DIMENSIONS"] == ["time", "variable", "ensemble", "cell"]
    attrs = dict(group.attrs)
    assert attrs["variables"] == VARIABLES
    assert attrs["frequency"] == "6h"
    assert attrs["start_date"] == "1996-01-05T00:00:00"
    assert attrs["end_date"] == "1996-01-20T18:00:00"
    assert attrs["missing_dates"] == [
        "1996-01-09T06:00:00",
        "1996-01-14T00:00:00",
        "1996-01-14T06:00:00",
    ]
    assert attrs["statistics_start_date"] == "1996-01-05T00:00:00"
    assert attrs["statistics_end_date"] == "1996-01-16T18:00:00"
    assert attrs["field_shape"] == [33, 22] and attrs["flatten_grid"] is True
    assert attrs["ensemble_dimension"] == 1
    assert attrs["variables_metadata"]["msl"]["units"] == "Pa"
    assert attrs["recipe"]["frequency"] == "6h" and attrs["licence"] == "Apache-2.0"
    for key in ("resolution", "version"):
        assert key in attrs


def test_start_end_windows(storm):
    two_days = open_dataset(storm, start="1996-01-17", end="1996-01-18")
    assert len(two_days) == 8
    assert str(two_days.dates[0]) == "1996-01-17T00:00:00"
    assert str(two_days.dates[-1]) == "1996-01-18T18:00:00"
    np.testing.assert_array_equal(two_days[0], open_dataset(storm)[48])
    assert len(open_dataset(storm, start="1996", end="1996-01")) == 64
    exact = open_dataset(storm, start="1996-01-09T06:00:00", end="1996-01-14T06")
    assert len(exact) == 21 and exact.missing == {0, 19, 20}  # indices within the window
    with pytest.raises(ValueError, match="1996-01-05T00:00:00 to 1996-01-20T18:00:00"):
        open_dataset(storm, start="1995", end="1995-12")


def test_statistics_are_read_from_the_store(storm):
    ds = open_dataset(storm, start="1996-01-17")  # a window still sees the store's statistics
    assert set(ds.statistics) == {"mean", "stdev", "minimum", "maximum"}
    assert 95000 < ds.statistics["mean"][0] < 105000  # msl in Pa
    assert ds.statistics_tendencies("6h")["stdev"].shape == (6,)
    with pytest.raises(KeyError, match="12h tendency statistics"):
        ds.statistics_tendencies("12h")


def test_dataset_pickles_for_dataloader_workers(storm):
    ds = open_dataset(storm, start="1996-01-17")
    clone = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(clone[3], ds[3])


def test_missing_store_and_missing_array_say_what_to_do(tmp_path, storm):
    with pytest.raises(FileNotFoundError, match="squall dataset create"):
        open_dataset(tmp_path / "absent.zarr")
    broken = tmp_path / "broken.zarr"
    write_dataset(broken, **_arrays_of(storm))
    for name in ("dates", "dates/.zarray", "dates/.zattrs", "dates/0", ".zmetadata"):
        target = broken / name
        if target.is_file():
            target.unlink()
    (broken / "dates").rmdir()
    with pytest.raises(ValueError, match="no 'dates' array.*squall dataset create"):
        open_dataset(broken)


def test_irregular_dates_are_refused(tmp_path, storm):
    arrays = _arrays_of(storm)
    arrays["dates"] = arrays["dates"].copy()
    arrays["dates"][10:] += np.timedelta64(6, "h")  # a 12 h gap after 1996-01-07T06
    with pytest.raises(ValueError, match="found a step of 12h between 1996-01-07T06:00:00"):
        write_dataset(tmp_path / "gap.zarr", **arrays)
    path = write_dataset(tmp_path / "ok.zarr", **_arrays_of(storm))
    group = zarr.open_group(path, mode="r+", use_consolidated=False)
    group["dates"][10:] = arrays["dates"][10:]  # corrupt the store behind squall's back
    zarr.consolidate_metadata(path)
    with pytest.raises(ValueError, match="irregular time axis"):
        open_dataset(path)


def test_failed_write_leaves_the_old_store_intact(tmp_path, storm, monkeypatch):
    path = write_dataset(tmp_path / "kept.zarr", **_arrays_of(storm))
    before = open_dataset(path).read(slice(None), allow_missing=True)

    arrays = _arrays_of(storm)
    arrays["data"][20, 2, 0, 100] = np.nan  # 1996-01-10T00 is not a missing date
    with pytest.raises(ValueError, match=r"1996-01-10T00:00:00 for \['u_surface'\]"):
        write_dataset(path, **arrays)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(zarr, "consolidate_metadata", crash)
    with pytest.raises(OSError, match="disk full"):
        write_dataset(path, **_arrays_of(storm))  # fails after the arrays were written

    np.testing.assert_array_equal(open_dataset(path).read(slice(None), allow_missing=True), before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.zarr"]  # no tmp left


def test_rewrite_replaces_the_store(tmp_path, storm):
    path = write_dataset(tmp_path / "twice.zarr", **_arrays_of(storm))
    arrays = _arrays_of(storm)
    arrays["variables"] = [f"{name}_renamed" for name in arrays["variables"]]
    write_dataset(path, **arrays)
    assert open_dataset(path).variables[0] == "msl_renamed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["twice.zarr"]


def test_refuses_to_replace_something_that_is_not_a_store(tmp_path, storm):
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "thesis.txt").write_text("do not delete")
    with pytest.raises(FileExistsError, match="not a zarr store"):
        write_dataset(precious, **_arrays_of(storm))
    assert (precious / "thesis.txt").read_text() == "do not delete"


def test_a_store_with_other_chunking_and_older_attributes_opens(tmp_path, storm):
    """As anemoi-datasets may write it: several dates per chunk, points split across chunks,
    `name_to_index` instead of `variables`, no squall attributes."""
    source = open_dataset(storm)
    values = source.read(slice(None), allow_missing=True)
    group = zarr.open_group(tmp_path / "foreign.zarr", mode="w", zarr_format=2)
    group.create_array("data", data=values, chunks=(5, 6, 1, 100))
    for name in ("dates", "latitudes", "longitudes"):
        group.create_array(name, data=np.asarray(getattr(source, name)))
    group.attrs.update(
        name_to_index={name: i for i, name in enumerate(VARIABLES)},
        frequency="6h",
        missing_dates=["1996-01-09T06:00:00"],
    )
    foreign = open_dataset(tmp_path / "foreign.zarr", start="1996-01-09")
    assert foreign.variables == VARIABLES and foreign.missing == {1}
    np.testing.assert_array_equal(foreign.read([0, 2, 3]), source.read([16, 18, 19]))
    np.testing.assert_array_equal(foreign.read(5, points=slice(90, 210)), source[21][..., 90:210])
    assert foreign.field_shape == (726,)
