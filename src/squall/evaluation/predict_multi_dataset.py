"""Forecasts of an exported model on several datasets (squall.models.multi_dataset): every
initial time of a period rolled out to a lead time, one forecasts zarr per output dataset in the
layout `squall predict` writes, so that `squall evaluate` scores each against its own dataset.

An initial time is the last input time; the inputs before it may lie before the period, as in
`squall predict`. Data at later times is read only when the model needs it: input variables it
does not predict (forcings, or an input-only dataset).
"""

from __future__ import annotations

import datetime
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr
from tqdm import tqdm

from squall.data.multi_datamodule import MultiDatasetSamples
from squall.data.sampling import sample_offsets
from squall.data.store import open_dataset
from squall.evaluation.forecast_layout import forecast_dataset
from squall.evaluation.predict import lead_steps_of, write_zarr_atomically
from squall.export.artifact import load_artifact, read_graph


def _check_forecaster(artifact, spec: dict[str, Any], datasets: dict[str, Any]) -> None:
    if "datasets" not in spec:
        raise ValueError(f"{artifact} reads one dataset: forecast with `squall predict`")
    if spec["lead_steps"] == 0:
        raise ValueError(
            f"{artifact} is a downscaler (it predicts at its input time): score it with "
            "`squall evaluate-downscaling`"
        )
    missing = sorted(set(spec["datasets"]) - set(datasets))
    if missing:
        raise ValueError(f"give the datasets {missing} (NAME=PATH) the model was trained on")


def _check_grids(artifact, metadata: dict, stores: dict) -> None:
    """The graph's grid identity is `name=hash;...` over the training datasets."""
    expected = metadata["graph"].get("coordinates_hash") or ""
    trained = dict(entry.split("=", 1) for entry in expected.split(";") if "=" in entry)
    for name, store in stores.items():
        if name in trained and trained[name] != store.coordinates_hash:
            raise ValueError(
                f"{artifact} was trained with dataset {name!r} on the grid {trained[name]}, but "
                f"the one given has the grid {store.coordinates_hash}: give the same grid"
            )


def _shifted(date: str, steps: int, step: np.timedelta64) -> str:
    return str(np.datetime64(date, "s") + steps * step)


def predict_multi_dataset(
    artifact: str | Path,
    datasets: dict[str, Any],
    start: str,
    end: str,
    lead_time_hours: int,
    batch_size: int = 8,
    device: str | None = None,
    progress: bool = True,
) -> dict[str, xr.Dataset]:
    """{output dataset name: forecasts (init_time, lead_time, member, point, variable)} from
    every initial time in start..end whose inputs (and needed later data) every dataset has.
    `datasets`: {name: path or open_dataset mapping}, the names the model was trained with."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, metadata = load_artifact(artifact, device=device)
    spec = metadata["model_spec"]
    _check_forecaster(artifact, spec, datasets)
    step_seconds = spec["timestep_seconds"]
    lead_steps = lead_steps_of(lead_time_hours, step_seconds)
    k = model.input_steps
    future = lead_steps if model.needs_known_inputs else 0
    timestep = np.timedelta64(step_seconds, "s")
    window = (_shifted(start, 1 - k, timestep), _shifted(end, future, timestep))
    roles = spec["datasets"]
    # dates one model step apart, in steps of the datasets' shared frequency
    frequency = open_dataset(datasets[next(iter(roles))]).frequency
    step = int(datetime.timedelta(seconds=step_seconds) / frequency)
    samples = MultiDatasetSamples(
        {n: {"dataset": datasets[n], "variables": roles[n]["variables"]} for n in roles},
        *window,
        sample_offsets(k, future, step),
    )
    stores = {name: s.store for name, s in samples.samples.items()}
    _check_grids(artifact, metadata, stores)
    first = next(iter(samples.samples.values()))
    anchors = first.store.dates[first.indices]
    items = np.flatnonzero(
        (anchors >= np.datetime64(start, "s")) & (anchors <= np.datetime64(end, "s"))
    ).tolist()
    if not items:
        raise ValueError(
            f"no initial time in {start}..{end} has its {k} input states"
            + (" and the data of its lead times" if future else "")
            + f" present in every dataset ({list(datasets)})"
        )
    chunks: dict[str, list[np.ndarray]] = {name: [] for name in model.output_names}
    batches = range(0, len(items), batch_size)
    for position in tqdm(batches, desc="forecasts", unit="batch", disable=not progress):
        batch = samples.__getitems__(items[position : position + batch_size])
        data = {name: values.to(device).contiguous() for name, values in batch["data"].items()}
        inputs = {name: values[:, :k] for name, values in data.items()}
        known = {name: values[:, k:] for name, values in data.items()} if future else None
        last_input_time = batch["time"][:, k - 1].to(device)
        outputs = model.rollout(inputs, last_input_time, lead_steps, known)
        for name, values in outputs.items():
            chunks[name].append(values.cpu().numpy())
    graph = read_graph(artifact)
    lead_time = (np.arange(1, lead_steps + 1) * step_seconds).astype("timedelta64[s]")
    forecasts = {}
    for name in model.output_names:
        view = {"timestep_seconds": step_seconds, "variables": metadata["variables"][name]}
        described = json.dumps(datasets[name]) if isinstance(datasets[name], dict) else None
        forecast = forecast_dataset(
            np.concatenate(chunks[name]),
            anchors[items],
            lead_time,
            stores[name],
            view,
            artifact,
            described or str(datasets[name]),
        )
        weights = graph[name].area_weight.cpu().numpy()
        forecasts[name] = forecast.assign_coords(area_weight=("point", weights)).assign_attrs(
            output_dataset=name
        )
    return forecasts


def predict_multi_dataset_to_dir(
    artifact, datasets, start, end, lead_time_hours, out_dir, **kwargs
) -> Path:
    """`squall predict-multi-dataset`: <out_dir>/<dataset>.zarr for each output dataset; the
    directory is replaced only once every zarr is written."""
    out_dir = Path(out_dir)
    forecasts = predict_multi_dataset(artifact, datasets, start, end, lead_time_hours, **kwargs)
    temporary = out_dir.with_name(f"{out_dir.name}.tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    for name, forecast in forecasts.items():
        write_zarr_atomically(forecast, temporary / f"{name}.zarr")
    shutil.rmtree(out_dir, ignore_errors=True)
    temporary.rename(out_dir)
    return out_dir
