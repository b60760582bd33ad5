"""Area-weighted scores, WeatherBench-style, NaN-aware.

Shapes: forecasts `f` and truth `t` are (init, lead, point, variable); ensembles `e` are
(init, lead, member, point, variable); weights `w` are (point,). A spatial mean is
sum(w x) / sum(w) over the points where x is defined, so a field that is missing on some points
(a regional mask) or on a whole date (a missing date: all NaN) is scored where it exists.
Scores are averaged over initial times; RMSE is the root of the mean of the spatial MSE.
"""

from __future__ import annotations

import warnings

import numpy as np

RANK_SEED = 0  # ties between members and truth are broken at random, reproducibly


def spatial_mean(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(..., point, variable) -> (..., variable), NaN where no point is defined."""
    defined = ~np.isnan(values)
    w = weights[:, None] * defined
    total = w.sum(axis=-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, np.nansum(values * weights[:, None], axis=-2) / total, np.nan)


def _mean_over_inits(values: np.ndarray) -> np.ndarray:
    # A lead with no verifying data is NaN on purpose: silence numpy's "mean of empty slice".
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=0)


def rmse(f: np.ndarray, t: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(lead, variable)."""
    return np.sqrt(_mean_over_inits(spatial_mean((f - t) ** 2, w)))


def bias(f: np.ndarray, t: np.ndarray, w: np.ndarray) -> np.ndarray:
    return _mean_over_inits(spatial_mean(f - t, w))


def mae(f: np.ndarray, t: np.ndarray, w: np.ndarray) -> np.ndarray:
    return _mean_over_inits(spatial_mean(np.abs(f - t), w))


def acc(f: np.ndarray, t: np.ndarray, climatology: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Anomaly correlation: per forecast, the weighted correlation of f - c and t - c (uncentred,
    as in WeatherBench 2), then averaged over initial times."""
    fa, ta = f - climatology, t - climatology
    both = ~(np.isnan(fa) | np.isnan(ta))
    fa, ta = np.where(both, fa, np.nan), np.where(both, ta, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_forecast = spatial_mean(fa * ta, w) / np.sqrt(
            spatial_mean(fa**2, w) * spatial_mean(ta**2, w)
        )
    return _mean_over_inits(per_forecast)


def fair_crps(e: np.ndarray, t: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Fair CRPS: mean_j |x_j - y| - sum_{i,j} |x_i - x_j| / (2 M (M - 1)), per point, then
    averaged like the other scores. The pair sum uses sorted members: O(M log M), not O(M^2)."""
    members = e.shape[2]
    if members < 2:
        raise ValueError("the fair CRPS needs at least 2 ensemble members")
    skill = np.abs(e - t[:, :, None]).mean(axis=2)
    ordered = np.sort(e, axis=2)
    k = np.arange(1, members + 1).reshape(1, 1, members, 1, 1)
    pair_sum = 2 * ((2 * k - members - 1) * ordered).sum(axis=2)
    crps = skill - pair_sum / (2 * members * (members - 1))
    return _mean_over_inits(spatial_mean(crps, w))


def spread_skill(e: np.ndarray, t: np.ndarray, w: np.ndarray) -> np.ndarray:
    """sqrt((M + 1) / M) x spread / RMSE of the ensemble mean; 1 for a reliable ensemble."""
    members = e.shape[2]
    variance = np.where(np.isnan(t), np.nan, e.var(axis=2, ddof=1))  # where truth exists
    spread = np.sqrt(_mean_over_inits(spatial_mean(variance, w)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt((members + 1) / members) * spread / rmse(e.mean(axis=2), t, w)


def rank_histogram(e: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(lead, variable, members + 1) counts of the rank of the truth among the members."""
    rng = np.random.default_rng(RANK_SEED)
    below = (e < t[:, :, None]).sum(axis=2)
    ties = (e == t[:, :, None]).sum(axis=2)
    rank = below + np.floor(rng.random(below.shape) * (ties + 1)).astype(int)
    members = e.shape[2]
    valid = ~np.isnan(t)
    counts = np.zeros((t.shape[1], t.shape[3], members + 1), dtype=np.int64)
    for lead in range(t.shape[1]):
        for variable in range(t.shape[3]):
            chosen = rank[:, lead, :, variable][valid[:, lead, :, variable]]
            counts[lead, variable] = np.bincount(chosen, minlength=members + 1)
    return counts
