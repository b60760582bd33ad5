"""Reference forecasts a model must beat: persistence and a climatology of the training period."""

from __future__ import annotations

import numpy as np


def persistence(initial_state: np.ndarray, lead_steps: int) -> np.ndarray:
    """(init, point, variable) -> (init, lead, point, variable): the initial state at every lead."""
    return np.repeat(initial_state[:, None], lead_steps, axis=1)


def hour_of_day(dates: np.ndarray) -> np.ndarray:
    return ((dates.astype("datetime64[h]").astype(np.int64)) % 24).astype(np.int64)


def fit_climatology(fields: np.ndarray, dates: np.ndarray) -> dict[int, np.ndarray]:
    """Mean field per hour of day over the given (training) dates; NaN dates are skipped.

    fields (date, point, variable). Keyed by hour, so the diurnal cycle is part of the baseline.
    """
    hours = hour_of_day(dates)
    return {int(h): np.nanmean(fields[hours == h], axis=0) for h in np.unique(hours)}


def climatology_forecast(climatology: dict[int, np.ndarray], valid_dates: np.ndarray) -> np.ndarray:
    """valid_dates (init, lead) -> (init, lead, point, variable)."""
    hours = hour_of_day(valid_dates)
    unknown = sorted(set(np.unique(hours).tolist()) - set(climatology))
    if unknown:
        raise ValueError(f"the climatology has no data for hours {unknown} of the day")
    return np.stack([np.stack([climatology[int(h)] for h in row]) for row in hours])
