"""Temporal interpolation scored like a forecast: predictions at every target time between
held-out input pairs, and the references an interpolator must beat.

Windows start at every time of the period that is a multiple of the input spacing (00, 06, 12
and 18 UTC for inputs 6 h apart: what a 6-hourly archive holds) and whose inputs and targets are
all present. In the forecasts layout a window's init_time is its first input and its lead times
are the targets' offsets from it, so `squall evaluate` scores each target hour.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
import xarray as xr

from squall.data.store import Dataset, open_dataset
from squall.evaluation.forecast_layout import forecast_dataset, read_states

if TYPE_CHECKING:  # evaluation runs the exported model, it does not build one
    from squall.models.interface import ForecastModel

TASK = "interpolator"


def linear_in_time(first: np.ndarray, last: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """The straight line between two states: first, last (window, ...) and fractions (target,)
    of the way from first to last -> (window, target, ...)."""
    weight = np.asarray(fractions, dtype=np.float64).reshape(1, -1, *([1] * (first.ndim - 1)))
    return ((1 - weight) * first[:, None] + weight * last[:, None]).astype(first.dtype)


def nearest_input(first: np.ndarray, last: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """The true end point nearer in time to each target (the first input at the midpoint)."""
    take_last = np.asarray(fractions).reshape(1, -1, *([1] * (first.ndim - 1))) > 0.5
    return np.where(take_last, last[:, None], first[:, None])


def interpolation_windows(
    store: Dataset, start: str, end: str, offsets: np.ndarray, spacing: int
) -> list[int]:
    """Indices in `store` of window starts in start..end at a multiple of the input spacing
    (`spacing` dataset steps) whose dates at `offsets` are all present."""
    window = open_dataset(store.path, start=start, end=end)
    first = int(np.searchsorted(store.dates, window.dates[0]))
    step_seconds = int(store.frequency.total_seconds())
    epoch = store.dates.astype("datetime64[s]").astype(np.int64)
    starts = []
    for index in range(first, first + len(window)):
        dates = index + offsets
        if (
            epoch[index] % (spacing * step_seconds) == 0
            and dates.min() >= 0
            and dates.max() < len(store)
            and not store.missing.intersection(dates.tolist())
        ):
            starts.append(index)
    return starts


def predict_interpolation(
    model: ForecastModel,
    metadata: dict[str, Any],
    artifact: str | Path,
    dataset_path: str | Path,
    start: str,
    end: str,
    device: str,
    batch_size: int = 8,
) -> xr.Dataset:
    """The interpolator's states at its target times for every window in start..end, in the
    forecasts layout (physical units), with the input offsets in the attributes."""
    store = open_dataset(dataset_path)
    trained_frequency = metadata.get("config", {}).get("data", {}).get("frequency")
    frequency_hours = store.frequency.total_seconds() / 3600
    if trained_frequency and pd.Timedelta(trained_frequency) != store.frequency:
        raise ValueError(
            f"the interpolator counts its times in steps of {trained_frequency} but "
            f"{dataset_path} has a step of {frequency_hours:g} h: predict on a dataset of the "
            "training frequency"
        )
    times = metadata["model_spec"]["explicit_times"]
    first, last = times["input"]
    targets = np.asarray(times["target"])
    offsets = np.asarray([first, last, *targets])
    windows = interpolation_windows(store, start, end, offsets - first, last - first)
    if not windows:
        raise ValueError(
            f"no window of {dataset_path} starting in {start}..{end} at a multiple of "
            f"{(last - first) * frequency_hours:g} h has its inputs and targets present"
        )
    columns = [store.name_to_index[v] for v in metadata["variables"]["all"]]
    epoch = store.dates.astype("datetime64[s]").astype(np.int64)
    fractions = torch.tensor((targets - first) / (last - first), dtype=torch.float32)
    chunks = []
    for begin in range(0, len(windows), batch_size):
        anchors = np.asarray(windows[begin : begin + batch_size])
        inputs = read_states(
            store, anchors[:, None] + np.asarray([0, last - first]), columns, device
        )
        size, count = len(anchors), len(targets)
        # one network call for every (window, target) pair: the targets go into the batch
        pairs = model.normalizer.normalise(inputs)[:, None].expand(size, count, *inputs.shape[1:])
        valid = anchors[:, None] + (targets - first)[None, :]
        with torch.no_grad():
            out = model.forward_normalised(
                pairs.flatten(0, 1),
                torch.from_numpy(epoch[valid.ravel()]).to(device),
                fractions.to(device).repeat(size),
            )
        out = model.normalizer.denormalise(out, model.output_columns)
        chunks.append(out.unflatten(0, (size, count)).cpu().numpy())
    step_seconds = int(store.frequency.total_seconds())
    lead_time = ((targets - first) * step_seconds).astype("timedelta64[s]")
    span_hours = (last - first) * step_seconds // 3600
    return forecast_dataset(
        np.concatenate(chunks),
        store.dates[windows],
        lead_time,
        store,
        metadata,
        artifact,
        dataset_path,
        task_attrs={"task": TASK, "input_lead_hours": [0, int(span_hours)]},
    )


def interpolation_baselines(
    forecasts: xr.Dataset, truth_at: Callable[[np.ndarray], np.ndarray]
) -> dict[str, np.ndarray]:
    """Linear interpolation in time between the true inputs, and the nearer true input, as
    (window, target, member 1, point, variable); `truth_at(dates)` -> (date, point, variable)."""
    inits = forecasts.init_time.values
    span = np.timedelta64(forecasts.attrs["input_lead_hours"][1], "h")
    first, last = truth_at(inits), truth_at(inits + span)
    fractions = forecasts.lead_time.values / span
    return {
        "linear": linear_in_time(first, last, fractions)[:, :, None],
        "nearest_input": nearest_input(first, last, fractions)[:, :, None],
    }
