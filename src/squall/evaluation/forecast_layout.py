"""The forecasts zarr layout that `squall predict` writes and `squall evaluate` reads, shared by
every single-dataset task: states read from a store as model inputs, and predictions put into
(init_time, lead_time, member, point, variable) with the grid's coordinates and attributes.

A forecaster's init_time is its last input time and lead_time the time after it; an
interpolator's init_time is its first input and lead_time the target's offset from it; an
autoencoder's init_time is the state it reconstructs, at lead time 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from squall.data.store import Dataset
from squall.export.artifact import read_graph


def read_states(
    store: Dataset,
    indices: np.ndarray,
    columns: list[int],
    device: str | torch.device,
    members: int | None = None,
) -> torch.Tensor:
    """(n, T) date indices -> (n, T, E, G, V) on the device. `members` repeats a single-member
    dataset (a stochastic model makes the copies differ)."""
    values = store.read(indices.ravel().tolist())[:, columns]  # (n*T, V, E, G)
    values = values.reshape(*indices.shape, *values.shape[1:]).transpose(0, 1, 3, 4, 2)
    tensor = torch.from_numpy(np.ascontiguousarray(values)).to(device)
    if members and members != tensor.shape[2]:
        if tensor.shape[2] != 1:
            raise ValueError(
                f"the dataset has {tensor.shape[2]} members; --members {members} can only "
                "repeat a single-member dataset"
            )
        tensor = tensor.expand(-1, -1, members, -1, -1).contiguous()
    return tensor


def forecast_dataset(
    forecast: np.ndarray,
    init_time: np.ndarray,
    lead_time: np.ndarray,
    store: Dataset,
    metadata: dict[str, Any],
    artifact: str | Path,
    dataset_path: str | Path,
    task_attrs: dict[str, Any] | None = None,
) -> xr.Dataset:
    """forecast (init, lead, member, point, variable) in physical units -> the zarr layout.
    `task_attrs` (an interpolator's or autoencoder's) tell evaluate how to score it."""
    graph = read_graph(artifact)
    area_weight = graph["data"].get("area_weight") if "data" in graph.node_types else None
    coords = {
        "init_time": init_time,
        "lead_time": lead_time,
        "member": np.arange(forecast.shape[2]),
        "variable": metadata["variables"]["output"],
        "latitude": ("point", store.latitudes),
        "longitude": ("point", store.longitudes),
    }
    if area_weight is not None:
        coords["area_weight"] = ("point", area_weight.cpu().numpy())
    return xr.Dataset(
        {"forecast": (("init_time", "lead_time", "member", "point", "variable"), forecast)},
        coords=coords,
        attrs={
            "model": str(artifact),
            "dataset": str(dataset_path),
            "field_shape": list(store.field_shape),
            "coordinates_hash": store.coordinates_hash,
            "timestep_seconds": metadata["timestep_seconds"],
            "units": {
                v: store.metadata.get("variables_metadata", {}).get(v, {}).get("units", "")
                for v in metadata["variables"]["output"]
            },
            **(task_attrs or {}),
        },
    )
