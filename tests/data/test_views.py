"""open_dataset's selectors and combinations, on small synthetic stores whose values encode
(date, variable, point), so each test can see exactly what was read."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from squall.data.store import open_dataset
from squall.data.store_write import write_dataset

SIX_HOURS = np.timedelta64(6, "h")


def _store(path, *, start="2020-01-01", dates=8, variables=("a", "b", "c"), grid=None, missing=()):
    """Values are 1000 * date + 100 * variable + point (synthetic, for selector tests)."""
    lat, lon, shape = grid if grid is not None else _global_grid()
    times = np.datetime64(start, "s") + np.arange(dates) * SIX_HOURS
    t, v, p = np.meshgrid(
        np.arange(dates), np.arange(len(variables)), np.arange(len(lat)), indexing="ij"
    )
    data = (1000.0 * t + 100.0 * v + p)[:, :, None, :].astype(np.float32)
    for i in missing:
        data[i] = np.nan
    stats = {
        "period": {"start": times[0], "end": times[-1]},
        "mean": np.arange(len(variables), dtype=float),
        "stdev": np.ones(len(variables)),
        "minimum": np.zeros(len(variables)),
        "maximum": np.full(len(variables), 9.0),
    }
    return write_dataset(
        path,
        data=data,
        dates=times,
        latitudes=lat,
        longitudes=lon,
        variables=list(variables),
        frequency="6h",
        field_shape=shape,
        missing_dates=[times[i] for i in missing],
        statistics=stats,
        tendency_statistics={"6h": stats},
    )


def _global_grid(step=30.0):
    lats = np.arange(-60.0, 61.0, step)
    lons = np.arange(0.0, 360.0, step)
    lat, lon = np.meshgrid(lats, lons, indexing="ij")
    return lat.ravel(), lon.ravel(), (len(lats), len(lons))


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("views")
    regional = np.meshgrid(np.arange(-5.0, 5.1, 5.0), np.arange(25.0, 35.1, 5.0), indexing="ij")
    return {
        "main": _store(root / "main.zarr", missing=[3]),
        "extra": _store(root / "extra.zarr", variables=("c", "d")),
        "later": _store(root / "later.zarr", start="2020-01-03"),
        "gap": _store(root / "gap.zarr", start="2020-01-04"),
        "regional": _store(
            root / "regional.zarr", grid=(regional[0].ravel(), regional[1].ravel(), (3, 3))
        ),
    }


def _date(value) -> int:
    return int(value // 1000)


def test_start_end_and_frequency(stores):
    ds = open_dataset(stores["main"], start="2020-01-01T12", end="2020-01-02")
    assert len(ds) == 6 and _date(ds[0][0, 0, 0]) == 2
    assert ds.missing == {1}  # date 3 of the store, index 1 of the window
    twelve = open_dataset(stores["main"], frequency="12h")
    assert len(twelve) == 4 and twelve.frequency.total_seconds() == 43200
    assert [_date(twelve[i][0, 0, 0]) for i in range(4)] == [0, 2, 4, 6]
    assert twelve.missing == set()  # the missing date 3 is not on the 12-hourly axis
    with pytest.raises(ValueError, match="not a whole multiple"):
        open_dataset(stores["main"], frequency="9h")


def test_select_drop_rename_reorder(stores):
    ds = open_dataset(stores["main"], select=["c", "a"])
    assert ds.variables == ["a", "c"]  # dataset order, as anemoi keeps it
    np.testing.assert_array_equal(ds[0][:, 0, 0], [0, 200])
    assert open_dataset(stores["main"], drop="b").variables == ["a", "c"]
    renamed = open_dataset(stores["main"], rename={"a": "2t"})
    assert renamed.variables == ["2t", "b", "c"] and renamed.name_to_index["2t"] == 0
    reordered = open_dataset(stores["main"], reorder=["c", "a", "b"])
    np.testing.assert_array_equal(reordered[1][:, 0, 0], [1200, 1000, 1100])
    np.testing.assert_array_equal(reordered.statistics["mean"], [2, 0, 1])
    with pytest.raises(ValueError, match=r"cannot select \['z'\]"):
        open_dataset(stores["main"], select=["z"])
    with pytest.raises(ValueError, match="reorder must name each selected variable"):
        open_dataset(stores["main"], reorder=["c", "a"])


def test_area_and_thinning(stores):
    full = open_dataset(stores["main"])
    assert full.field_shape == (5, 12)
    area = open_dataset(stores["main"], area=(30, 330, -30, 30))  # wraps across 0 degrees
    assert set(area.latitudes) == {-30.0, 0.0, 30.0} and set(area.longitudes) == {330.0, 0.0, 30.0}
    np.testing.assert_array_equal(
        area[0][0, 0] % 100,
        np.flatnonzero((np.abs(full.latitudes) <= 30) & np.isin(full.longitudes, [0, 30, 330])),
    )
    thin = open_dataset(stores["main"], thinning=2)
    assert len(thin.latitudes) == 3 * 6 and set(thin.latitudes) == {-60.0, 0.0, 60.0}
    assert thin.field_shape == (3, 6) and area.field_shape == (3, 3)
    assert len(open_dataset(stores["main"], area=(90, -180, -90, 180)).latitudes) == 60


def test_join_same_dates_union_of_variables(stores):
    joined = open_dataset({"join": [stores["main"], stores["extra"]]})
    assert joined.variables == ["a", "b", "c", "d"]
    # "c" comes from the later dataset (variable 0 there), as in anemoi-datasets.
    np.testing.assert_array_equal(joined[2][:, 0, 5], [2005, 2105, 2005, 2105])
    assert joined.missing == {3}
    with pytest.raises(ValueError, match="their dates differ"):
        open_dataset({"join": [stores["main"], stores["later"]]})


def test_concat_along_dates(stores):
    first = {"dataset": stores["main"], "end": "2020-01-02T18"}
    both = open_dataset({"concat": [first, stores["later"]]})
    assert len(both) == 16 and both.missing == {3}
    assert _date(both[8][0, 0, 0]) == 0 and _date(both[7][0, 0, 0]) == 7
    np.testing.assert_array_equal(both.read([7, 8], allow_missing=True)[:, 0, 0, 0], [7000, 0])
    with pytest.raises(ValueError, match="irregular time axis"):
        open_dataset({"concat": [stores["main"], stores["gap"]]})


def test_cutout_puts_regional_points_first_and_masks_the_global_ones(stores):
    cut = open_dataset({"cutout": [stores["regional"], stores["main"]]})
    outer = open_dataset(stores["main"])
    assert len(cut.latitudes) == 9 + cut.global_mask.sum()
    # The global point at (0N, 30E) lies inside the regional domain: it is cut out.
    inside = np.flatnonzero((outer.latitudes == 0) & (outer.longitudes == 30))[0]
    assert not cut.global_mask[inside] and cut.global_mask.sum() == len(outer.latitudes) - 1
    values = cut[1][0, 0]
    np.testing.assert_array_equal(values[:9], 1000 + np.arange(9))
    np.testing.assert_array_equal(values[9:], 1000 + np.flatnonzero(cut.global_mask))
    np.testing.assert_array_equal(cut.read(1, points=slice(8, 10))[0, 0], values[8:10])


def test_nested_specs_and_pickling(stores):
    spec = {"dataset": {"join": [stores["main"], stores["extra"]]}, "select": ["a", "d"]}
    ds = open_dataset(spec, start="2020-01-02")
    assert ds.variables == ["a", "d"] and len(ds) == 4
    clone = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(clone[0], ds[0])
    with pytest.raises(ValueError, match="unknown dataset options"):
        open_dataset({"dataset": stores["main"], "selct": ["a"]})
