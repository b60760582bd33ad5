"""Forecasts from an exported model over a period: every initial time, rolled out to a lead time."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from squall.data.store import Dataset, open_dataset
from squall.export.artifact import load_artifact


def initial_times(store: Dataset, start: str, end: str, input_steps: int, step: int) -> list[int]:
    """Indices in `store` of initial times in start..end whose input states are all present."""
    window = open_dataset(store.path, start=start, end=end)
    first = int(np.searchsorted(store.dates, window.dates[0]))
    indices = []
    for index in range(first, first + len(window)):
        inputs = index - np.arange(input_steps)[::-1] * step
        if inputs[0] >= 0 and not store.missing.intersection(inputs.tolist()):
            indices.append(index)
    return indices


def predict(
    artifact: str | Path,
    dataset_path: str | Path,
    start: str,
    end: str,
    lead_steps: int,
    batch_size: int = 8,
    device: str | None = None,
) -> xr.Dataset:
    """Roll the model out `lead_steps` steps from every initial time in start..end.

    Returns an xarray Dataset with `forecast` (init_time, lead_time, member, point, variable).
    """
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, metadata = load_artifact(artifact, device=device)
    store = open_dataset(dataset_path)
    variables = metadata["variables"]["all"]
    missing_vars = [v for v in variables if v not in store.name_to_index]
    if missing_vars:
        raise ValueError(f"the model needs {missing_vars}, which {dataset_path} does not have")
    columns = [store.name_to_index[v] for v in variables]
    step = int(metadata["timestep_seconds"] // store.frequency.total_seconds())
    k = model.input_steps
    inits = initial_times(store, start, end, k, step)
    if not inits:
        raise ValueError(f"no initial time in {start}..{end} has its {k} input states present")
    if metadata["variables"]["forcing"]:
        raise NotImplementedError("forcing variables read from data during rollout: issue 8")
    epoch = store.dates.astype("datetime64[s]").astype(np.int64)
    chunks = []
    for first in range(0, len(inits), batch_size):
        batch = inits[first : first + batch_size]
        states = np.stack(
            [store.read(list(i - np.arange(k)[::-1] * step))[:, columns] for i in batch]
        )  # (B, T, V, E, G)
        x = torch.from_numpy(states.transpose(0, 1, 3, 4, 2)).to(device)
        times = torch.from_numpy(epoch[batch]).to(device)
        chunks.append(model.rollout(x, times, lead_steps).cpu().numpy())
    forecast = np.concatenate(chunks)  # (I, L, E, G, V_out)
    lead_time = (np.arange(1, lead_steps + 1) * metadata["timestep_seconds"]).astype(
        "timedelta64[s]"
    )
    return xr.Dataset(
        {"forecast": (("init_time", "lead_time", "member", "point", "variable"), forecast)},
        coords={
            "init_time": store.dates[inits],
            "lead_time": lead_time,
            "member": np.arange(forecast.shape[2]),
            "variable": metadata["variables"]["output"],
            "latitude": ("point", store.latitudes),
            "longitude": ("point", store.longitudes),
        },
        attrs={
            "model": str(artifact),
            "dataset": str(dataset_path),
            "field_shape": list(store.field_shape),
        },
    )


def write_zarr_atomically(dataset: xr.Dataset, path: str | Path) -> Path:
    path = Path(path)
    temporary = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(temporary, ignore_errors=True)
    dataset.to_zarr(temporary, mode="w", zarr_format=2, consolidated=True)
    if path.exists():
        shutil.rmtree(path)
    os.replace(temporary, path)
    return path
