"""Statistics over the training split of the storm sample, checked against plain numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from squall.data.recipes import create_dataset
from squall.data.statistics import (
    StatisticsPeriodError,
    check_statistics_period,
    compute_statistics,
    load_statistics,
    write_statistics_json,
)
from squall.data.store import open_dataset

REPO = Path(__file__).resolve().parents[2]
TRAINING = ("1996-01-05T00", "1996-01-16T18")  # the recipe's statistics period: indices 0..47


@pytest.fixture(scope="module")
def storm(tmp_path_factory):
    recipe = REPO / "configs" / "datasets" / "storm.yaml"
    return open_dataset(
        create_dataset(recipe, tmp_path_factory.mktemp("st") / "s.zarr", base_dir=REPO)
    )


@pytest.fixture(scope="module")
def stats(storm):
    return compute_statistics(storm, *TRAINING)


def test_statistics_match_numpy_and_skip_missing_dates(storm, stats):
    present = [i for i in range(48) if i not in (17, 36, 37)]
    values = storm[present].astype(np.float64).transpose(1, 0, 2, 3).reshape(6, -1)
    assert stats["count"] == 45
    assert stats["missing_dates_skipped"] == [
        "1996-01-09T06:00:00",
        "1996-01-14T00:00:00",
        "1996-01-14T06:00:00",
    ]
    np.testing.assert_allclose(stats["mean"], values.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(stats["stdev"], values.std(axis=1), rtol=1e-9)
    np.testing.assert_array_equal(stats["minimum"], values.min(axis=1))
    np.testing.assert_array_equal(stats["maximum"], values.max(axis=1))
    assert stats["period"] == {"start": "1996-01-05T00:00:00", "end": "1996-01-16T18:00:00"}
    assert stats["variables"] == storm.variables
    assert stats["dataset_coordinates_hash"] == storm.coordinates_hash


def test_tendency_statistics_use_pairs_both_present(storm, stats):
    pairs = [(i, i + 1) for i in range(47) if not {i, i + 1} & {17, 36, 37}]
    diffs = np.stack([storm[j].astype(np.float64) - storm[i] for i, j in pairs])
    diffs = diffs.transpose(1, 0, 2, 3).reshape(6, -1)
    six_hours = stats["tendencies"]["6h"]
    assert six_hours["count"] == len(pairs) == 42
    np.testing.assert_allclose(six_hours["mean"], diffs.mean(axis=1), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(six_hours["stdev"], diffs.std(axis=1), rtol=1e-9)
    np.testing.assert_allclose(six_hours["minimum"], diffs.min(axis=1))
    np.testing.assert_allclose(six_hours["maximum"], diffs.max(axis=1))


def test_store_statistics_are_the_same_computation(storm, stats):
    for name in ("mean", "stdev", "minimum", "maximum"):
        np.testing.assert_array_equal(storm.statistics[name], stats[name])
        np.testing.assert_array_equal(
            storm.statistics_tendencies("6h")[name], stats["tendencies"]["6h"][name]
        )


def test_json_round_trip(tmp_path, stats):
    path = write_statistics_json(stats, tmp_path / "statistics.json")
    loaded = load_statistics(path)
    np.testing.assert_array_equal(loaded["stdev"], stats["stdev"])
    np.testing.assert_array_equal(
        loaded["tendencies"]["6h"]["mean"], stats["tendencies"]["6h"]["mean"]
    )
    assert loaded["period"] == stats["period"] and loaded["count"] == 45
    assert [p.name for p in tmp_path.iterdir()] == ["statistics.json"]
    with pytest.raises(FileNotFoundError, match="squall dataset statistics"):
        load_statistics(tmp_path / "absent.json")


def test_overlap_with_validation_or_test_is_refused(stats):
    check_statistics_period(
        stats, {"validation": ("1996-01-17", "1996-01-18"), "test": ("1996-01-19", "1996-01-20")}
    )
    with pytest.raises(
        StatisticsPeriodError,
        match=r"1996-01-16T18:00:00 overlaps the validation "
        r"period 1996-01-16T18 \.\. 1996-01-18",
    ):
        check_statistics_period(stats, {"validation": ("1996-01-16T18", "1996-01-18")})
    with pytest.raises(StatisticsPeriodError, match="test period 1996-01"):
        check_statistics_period(stats, {"test": ("1996-01", "1996-01")})


def test_bad_delta_and_empty_period(storm):
    with pytest.raises(ValueError, match="not a whole multiple"):
        compute_statistics(storm, *TRAINING, tendency_deltas=("9h",))
    with pytest.raises(ValueError, match="every date between .* is missing"):
        compute_statistics(storm, "1996-01-14T00", "1996-01-14T06")
    with pytest.raises(ValueError, match="no dates between"):
        compute_statistics(storm, "1997", "1997")


class _Synthetic:
    """An in-memory dataset (synthetic values) for the accumulator's numerical behaviour."""

    def __init__(self, data: np.ndarray):
        self.data = data
        self.dates = np.datetime64("2000-01-01", "s") + np.arange(len(data)) * np.timedelta64(
            6, "h"
        )
        self.missing: set[int] = set()
        self.variables = [f"v{j}" for j in range(data.shape[1])]
        self.frequency = "6h"
        self.coordinates_hash = "synthetic"

    def __getitem__(self, index: int) -> np.ndarray:
        return self.data[index]


def test_accumulation_is_stable_for_large_offsets_and_skips_nan():
    rng = np.random.default_rng(1)
    # A drifting 1e8 offset and a spread of 1e-2: naive sums of squares lose every digit.
    data = 1e8 + np.arange(200)[:, None, None, None] * 1e3 + rng.normal(0, 1e-2, (200, 1, 1, 50))
    data[5, 0, 0, :10] = np.nan  # NaN values are skipped, not propagated
    stats = compute_statistics(_Synthetic(data), "2000", "2000", tendency_deltas=["6h"])
    finite = data[np.isfinite(data)]
    np.testing.assert_allclose(stats["mean"], [finite.mean()], rtol=1e-14)
    np.testing.assert_allclose(stats["stdev"], [finite.std()], rtol=1e-9)
    assert stats["tendencies"]["6h"]["mean"][0] == pytest.approx(1e3, rel=1e-7)


def test_statistics_period_overlapping_held_out_dates_is_refused(storm, tmp_path):
    from squall.cli import main
    from squall.data.statistics import create_statistics_file

    with pytest.raises(StatisticsPeriodError, match="overlaps the validation period"):
        create_statistics_file(
            storm.path,
            tmp_path / "s.json",
            "1996-01-05",
            "1996-01-17",
            held_out={"validation": ("1996-01-17T00", "1996-01-18T18")},
        )
    assert not (tmp_path / "s.json").exists()
    args = ["dataset", "statistics", str(storm.path), str(tmp_path / "ok.json")]
    args += ["--start", TRAINING[0], "--end", TRAINING[1]]
    assert main(args + ["--validation", "1996-01-17T00", "1996-01-18T18"]) == 0
    assert main(args + ["--test", "1996-01-16", "1996-01-20"]) == 2  # a user error, reported
