"""Autoencoder reconstructions scored like a forecast at lead time 0, with the size of the
latent they pass through.

Every present state of the period is encoded onto the hidden mesh and decoded back. The
reference is the training-split climatology (persistence would be the state itself); the
compression ratio says what the reconstruction error buys.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
import xarray as xr

from squall.data.store import open_dataset
from squall.evaluation.forecast_layout import forecast_dataset, read_states

if TYPE_CHECKING:  # evaluation runs the exported model, it does not build one
    from squall.models.interface import ForecastModel

TASK = "autoencoder"
LATENT_SIZES = (
    "compression_ratio",
    "grid_points",
    "input_variables",
    "hidden_nodes",
    "latent_channels",
)


def compression_ratio(grid_points: int, variables: int, hidden_nodes: int, channels: int) -> float:
    """Values in a state (grid points x input variables) per value of its latent (hidden nodes
    x hidden channels): above 1, the latent is smaller than the state."""
    return grid_points * variables / (hidden_nodes * channels)


def latent_size(metadata: dict[str, Any]) -> dict[str, float]:
    """The state's and the latent's sizes, and their ratio, from an exported model's metadata."""
    nodes = metadata["graph"]["node_sets"]
    sizes = {
        "grid_points": int(nodes["data"]),
        "input_variables": len(metadata["variables"]["input"]),
        "hidden_nodes": int(nodes["hidden"]),
        "latent_channels": int(metadata["model_spec"]["network"]["hidden_channels"]),
    }
    ratio = compression_ratio(
        sizes["grid_points"],
        sizes["input_variables"],
        sizes["hidden_nodes"],
        sizes["latent_channels"],
    )
    return {"compression_ratio": ratio, **sizes}


def predict_reconstruction(
    model: ForecastModel,
    metadata: dict[str, Any],
    artifact: str | Path,
    dataset_path: str | Path,
    start: str,
    end: str,
    device: str,
    batch_size: int = 8,
) -> xr.Dataset:
    """Reconstructions of every present state in start..end, in the forecasts layout (lead time
    0, physical units), with the latent's size in the attributes."""
    store = open_dataset(dataset_path)
    window = open_dataset(dataset_path, start=start, end=end)
    first = int(np.searchsorted(store.dates, window.dates[0]))
    present = [i for i in range(first, first + len(window)) if i not in store.missing]
    if not present:
        raise ValueError(f"{dataset_path} has no state in {start}..{end} to reconstruct")
    columns = [store.name_to_index[v] for v in metadata["variables"]["all"]]
    epoch = store.dates.astype("datetime64[s]").astype(np.int64)
    chunks = []
    for begin in range(0, len(present), batch_size):
        dates = np.asarray(present[begin : begin + batch_size])
        states = model.normalizer.normalise(read_states(store, dates[:, None], columns, device))
        with torch.no_grad():
            out = model.forward_normalised(states, torch.from_numpy(epoch[dates]).to(device))
        out = model.normalizer.denormalise(out, model.output_columns)  # (n, E, G, V_out)
        chunks.append(out[:, None].cpu().numpy())
    return forecast_dataset(
        np.concatenate(chunks),
        store.dates[present],
        np.zeros(1, dtype="timedelta64[s]"),
        store,
        metadata,
        artifact,
        dataset_path,
        task_attrs={"task": TASK, **latent_size(metadata)},
    )


def reconstruction_baselines(
    forecasts: xr.Dataset, truth_at: Callable[[np.ndarray], np.ndarray]
) -> dict[str, np.ndarray]:
    """None beyond the climatology that every evaluation has: persistence at lead 0 is the
    truth itself."""
    return {}


def latent_rows(forecasts: xr.Dataset) -> pd.DataFrame:
    """The latent's size as rows of the scores table (variable `all`, lead time 0)."""
    return pd.DataFrame(
        [
            {
                "forecast": "model",
                "variable": "all",
                "level": None,
                "units": "",
                "lead_time_hours": 0,
                "metric": name,
                "value": float(forecasts.attrs[name]),
                "forecasts_scored": forecasts.sizes["init_time"],
            }
            for name in LATENT_SIZES
        ]
    )
