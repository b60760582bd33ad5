"""Forecasts from an exported model over a period: every initial time, rolled out to a lead time.

Output: an xarray Dataset with `forecast` (init_time, lead_time, member, point, variable) in
physical units, coordinates (latitude, longitude, area_weight per point) and attributes, written
to zarr so that `xr.open_zarr` opens it directly.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from tqdm import tqdm

from squall.data.store import Dataset, open_dataset
from squall.evaluation.forecast_layout import forecast_dataset, read_states
from squall.evaluation.interpolation import predict_interpolation
from squall.evaluation.reconstruction import predict_reconstruction
from squall.export.artifact import load_artifact


def forecastable_inits(
    store: Dataset, start: str, end: str, input_steps: int, step: int, forcing_steps: int
) -> list[int]:
    """Indices in `store` of initial times in start..end whose inputs are present, and, for a
    model that reads forcing variables, whose next `forcing_steps` steps are present too."""
    window = open_dataset(store.path, start=start, end=end)
    first = int(np.searchsorted(store.dates, window.dates[0]))
    needed = np.concatenate([-np.arange(input_steps)[::-1], np.arange(1, forcing_steps + 1)])
    indices = []
    for index in range(first, first + len(window)):
        dates = index + needed * step
        if (
            dates[0] >= 0
            and dates[-1] < len(store)
            and not store.missing.intersection(dates.tolist())
        ):
            indices.append(index)
    return indices


def lead_steps_of(lead_time_hours: int, step_seconds: int) -> int:
    """Model steps to a lead time; refused unless it is a whole number of steps."""
    if (lead_time_hours * 3600) % step_seconds:
        raise ValueError(
            f"lead time {lead_time_hours} h is not a multiple of the model step "
            f"({step_seconds // 3600} h)"
        )
    return lead_time_hours * 3600 // step_seconds


def _check_grid(store: Dataset, metadata: dict, dataset_path) -> None:
    expected = metadata["graph"].get("coordinates_hash")
    if expected and expected != store.coordinates_hash:
        raise ValueError(
            f"the model was trained on the grid {expected} but {dataset_path} has the grid "
            f"{store.coordinates_hash}: predict on a dataset of the model's grid"
        )


def predict(
    artifact: str | Path,
    dataset_path: str | Path,
    start: str,
    end: str,
    lead_time_hours: int,
    batch_size: int = 8,
    device: str | None = None,
    progress: bool = True,
    members: int | None = None,
) -> xr.Dataset:
    """Rollouts from every initial time in start..end. `members` runs an ensemble model from
    one initial state per member (the dataset's members by default; a single-member dataset
    is repeated, and a stochastic model makes the members differ)."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, metadata = load_artifact(artifact, device=device)
    if "datasets" in metadata["model_spec"]:
        raise ValueError(
            f"{artifact} reads several datasets: forecast with `squall predict-multi-dataset` "
            "(score a downscaler with `squall evaluate-downscaling`)"
        )
    store = open_dataset(dataset_path)
    _check_grid(store, metadata, dataset_path)
    variables = metadata["variables"]["all"]
    absent = [v for v in variables if v not in store.name_to_index]
    if absent:
        raise ValueError(f"the model needs {absent}, which {dataset_path} does not have")
    # one network call per sample, no rollout: their own windows and layout
    if model.task == "interpolator":
        return predict_interpolation(model, metadata, artifact, dataset_path, start, end, device)
    if model.task == "autoencoder":
        return predict_reconstruction(model, metadata, artifact, dataset_path, start, end, device)
    step_seconds = metadata["timestep_seconds"]
    lead_steps = lead_steps_of(lead_time_hours, step_seconds)
    step = int(step_seconds // store.frequency.total_seconds())
    # a limited-area model also reads the true state of its boundary at every step
    has_forcing = bool(metadata["variables"]["forcing"] or metadata["model_spec"].get("boundary"))
    k = model.input_steps
    inits = forecastable_inits(store, start, end, k, step, lead_steps if has_forcing else 0)
    if not inits:
        raise ValueError(
            f"no initial time in {start}..{end} has its {k} input states"
            + (" and its forcings" if has_forcing else "")
            + f" present in {dataset_path}"
        )
    columns = [store.name_to_index[v] for v in variables]
    epoch = store.dates.astype("datetime64[s]").astype(np.int64)

    chunks = []
    batches = range(0, len(inits), batch_size)
    for first in tqdm(batches, desc="forecasts", unit="batch", disable=not progress):
        batch = np.asarray(inits[first : first + batch_size])
        inputs = batch[:, None] + (np.arange(k) - (k - 1))[None, :] * step
        future = batch[:, None] + np.arange(1, lead_steps + 1)[None, :] * step
        known = read_states(store, future, columns, device, members) if has_forcing else None
        times = torch.from_numpy(epoch[batch]).to(device)
        states = read_states(store, inputs, columns, device, members)
        chunks.append(model.rollout(states, times, lead_steps, known).cpu().numpy())
    forecast = np.concatenate(chunks)  # (I, L, E, G, V_out)
    lead_time = (np.arange(1, lead_steps + 1) * step_seconds).astype("timedelta64[s]")
    forecasts = forecast_dataset(
        forecast, store.dates[inits], lead_time, store, metadata, artifact, dataset_path
    )
    forced = getattr(model, "forced", None)
    if forced is not None:  # a limited-area model's boundary, the truth: evaluate leaves it out
        forecasts = forecasts.assign_coords(forced=("point", forced.cpu().numpy()))
    return forecasts


def write_zarr_atomically(dataset: xr.Dataset, path: str | Path) -> Path:
    path = Path(path)
    temporary = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(temporary, ignore_errors=True)
    dataset.to_zarr(temporary, mode="w", zarr_format=2, consolidated=True)
    if path.exists():
        shutil.rmtree(path)
    os.replace(temporary, path)
    return path


def predict_to_zarr(
    artifact, dataset_path, start, end, lead_time_hours, out_path, **kwargs
) -> Path:
    """`squall predict`: forecasts of a period written to zarr."""
    return write_zarr_atomically(
        predict(artifact, dataset_path, start, end, lead_time_hours, **kwargs), out_path
    )
