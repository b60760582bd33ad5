"""Scores against numbers computed by hand or with plain numpy loops on small fields."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from squall.evaluation import metrics
from squall.evaluation.area import area_weights, is_regular_latlon, latitude_weights
from squall.evaluation.scores import improvement_over, level_of, score_table
from squall.evaluation.spectra import zonal_power_spectrum

RNG = np.random.default_rng(1)


def _case(inits=3, leads=2, points=4, variables=2, members=1):
    truth = RNG.normal(size=(inits, leads, points, variables))
    ensemble = truth[:, :, None] + RNG.normal(size=(inits, leads, members, points, variables))
    weights = np.array([1.0, 2.0, 0.5, 0.5])[:points]
    return ensemble, truth, weights


def test_rmse_bias_mae_by_hand():
    f = np.array([[[[1.0], [3.0]]]])  # one init, one lead, two points, one variable
    t = np.array([[[[0.0], [0.0]]]])
    w = np.array([3.0, 1.0])
    # weighted MSE = (3*1 + 1*9) / 4 = 3
    assert metrics.rmse(f, t, w)[0, 0] == pytest.approx(np.sqrt(3.0))
    assert metrics.bias(f, t, w)[0, 0] == pytest.approx((3 * 1 + 3) / 4)
    assert metrics.mae(f, t, w)[0, 0] == pytest.approx((3 * 1 + 3) / 4)


def test_rmse_is_the_root_of_the_mean_mse_over_inits():
    ensemble, truth, w = _case()
    f = ensemble[:, :, 0]
    expected = np.zeros((2, 2))
    for lead, variable in itertools.product(range(2), range(2)):
        mse = [
            np.sum(w * (f[i, lead, :, variable] - truth[i, lead, :, variable]) ** 2) / w.sum()
            for i in range(3)
        ]
        expected[lead, variable] = np.sqrt(np.mean(mse))
    np.testing.assert_allclose(metrics.rmse(f, truth, w), expected)


def test_missing_truth_is_left_out_not_counted_as_zero():
    ensemble, truth, w = _case()
    f = ensemble[:, :, 0]
    partial = truth.copy()
    partial[0] = np.nan  # the first initial time has no verifying data
    np.testing.assert_allclose(metrics.rmse(f, partial, w), metrics.rmse(f[1:], truth[1:], w))


def test_acc_by_hand_and_perfect_forecast():
    ensemble, truth, w = _case()
    f, c = ensemble[:, :, 0], RNG.normal(size=truth.shape)
    expected = np.zeros((2, 2))
    for lead, variable in itertools.product(range(2), range(2)):
        values = []
        for i in range(3):
            fa = f[i, lead, :, variable] - c[i, lead, :, variable]
            ta = truth[i, lead, :, variable] - c[i, lead, :, variable]
            values.append(np.sum(w * fa * ta) / np.sqrt(np.sum(w * fa**2) * np.sum(w * ta**2)))
        expected[lead, variable] = np.mean(values)
    np.testing.assert_allclose(metrics.acc(f, truth, c, w), expected)
    np.testing.assert_allclose(metrics.acc(truth, truth, c, w), 1.0)


def test_fair_crps_against_the_pairwise_formula():
    ensemble, truth, w = _case(members=5)
    m = 5
    crps = np.zeros(truth.shape)
    for i, lead, p, v in itertools.product(*(range(n) for n in truth.shape)):
        x, y = ensemble[i, lead, :, p, v], truth[i, lead, p, v]
        pairs = sum(abs(a - b) for a in x for b in x)
        crps[i, lead, p, v] = np.mean(np.abs(x - y)) - pairs / (2 * m * (m - 1))
    expected = (np.einsum("ilpv,p->ilv", crps, w) / w.sum()).mean(axis=0)
    np.testing.assert_allclose(metrics.fair_crps(ensemble, truth, w), expected)


def test_spread_skill_near_one_for_a_reliable_ensemble():
    rng = np.random.default_rng(7)
    members, shape = 10, (400, 1, 50, 1)
    # Truth and members drawn from the same distribution: statistically indistinguishable.
    truth = rng.normal(size=shape)
    ensemble = rng.normal(size=(shape[0], 1, members, *shape[2:]))
    ratio = metrics.spread_skill(ensemble, truth, np.ones(shape[2]))
    assert ratio[0, 0] == pytest.approx(1.0, abs=0.03)


def test_rank_histogram_counts():
    ensemble = np.array([1.0, 2.0, 3.0]).reshape(1, 1, 3, 1, 1).repeat(4, axis=3)
    truth = np.array([0.5, 1.5, 2.5, 9.0]).reshape(1, 1, 4, 1)
    counts = metrics.rank_histogram(ensemble, truth)
    assert counts[0, 0].tolist() == [1, 1, 1, 1]


def test_latitude_weights_match_exact_band_areas():
    latitudes = np.arange(-80.0, 80.1, 10.0)
    half = np.deg2rad(5.0)
    band = np.sin(np.deg2rad(latitudes) + half) - np.sin(np.deg2rad(latitudes) - half)
    np.testing.assert_allclose(latitude_weights(latitudes), band / band.mean())


def test_area_weights_choose_the_rule():
    lat, lon = np.meshgrid(np.arange(20, 30.1, 2.5), np.arange(0, 10.1, 5.0), indexing="ij")
    lat, lon = lat.ravel(), lon.ravel()
    assert is_regular_latlon(lat, lon, (5, 3))
    _, rule = area_weights(lat, lon, (5, 3))
    assert "cos(latitude)" in rule
    scattered = RNG.uniform(0, 10, size=15)
    weights, rule = area_weights(scattered, scattered, (15,), graph_weights=np.arange(1.0, 16))
    assert "graph" in rule and weights.mean() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="squall predict"):
        area_weights(scattered, scattered, (15,))


def test_spectrum_peaks_at_the_wave_number_of_a_sine():
    nlat, nlon = 4, 64
    lat, lon = np.meshgrid(np.linspace(40, 45, nlat), np.arange(nlon) * 1.0, indexing="ij")
    field = np.sin(2 * np.pi * 8 * np.arange(nlon) / nlon)[None, :].repeat(nlat, 0)
    wavelength, power = zonal_power_spectrum(
        field.ravel()[None], lat.ravel(), lon.ravel(), (nlat, nlon)
    )
    assert np.argmax(power) + 1 == 8
    assert wavelength[0] / wavelength[7] == pytest.approx(8.0)


def test_score_table_and_scorecard():
    ensemble, truth, w = _case()
    candidates = {"model": ensemble, "persistence": ensemble + 1.0}
    scores = score_table(candidates, truth, truth * 0, w, ["t_850", "msl"], {"msl": "Pa"}, [6, 12])
    assert set(scores.metric) == {"rmse", "bias", "mae", "acc"}
    card = improvement_over(scores, "persistence")
    model = scores[(scores.metric == "rmse") & (scores.forecast == "model")]
    base = scores[(scores.metric == "rmse") & (scores.forecast == "persistence")]
    ratio = model.value.to_numpy()[0] / base.value.to_numpy()[0]
    assert card.iloc[0, 0] == pytest.approx(100 * (1 - ratio))
    assert level_of("t_850") == 850 and level_of("msl") is None and level_of("t_surface") is None
