"""Scores of an exported downscaler on the fine grid, against the baselines a scientist expects:
the coarse input interpolated onto the fine grid, bilinearly and by nearest neighbour.

The model reads each test date's coarse state (its input datasets, as stored in the artifact's
spec); the fine truth is the output dataset at the same date. The baselines interpolate the
coarse field of the same variable name at the same date. Bilinear interpolation needs a regular
lat-lon coarse grid (fine points outside it are extrapolated linearly from the edge cells);
nearest neighbour works on any grid (great-circle nearest point). Scores are area-weighted
RMSE, bias and MAE per variable (squall.evaluation.metrics), averaged over the test dates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.interpolate import RegularGridInterpolator
from scipy.spatial import cKDTree

from squall.data.base import Dataset
from squall.data.multi_datamodule import MultiDatasetSamples
from squall.data.sampling import sample_offsets
from squall.evaluation import metrics
from squall.evaluation.area import area_weights, is_regular_latlon
from squall.evaluation.plots import plot_forecast_map, plot_scorecard
from squall.evaluation.scores import level_of, write_scores
from squall.export.artifact import load_artifact, read_graph

BASELINES = ("bilinear", "nearest")


def _unit_vectors(latitudes: np.ndarray, longitudes: np.ndarray) -> np.ndarray:
    lat, lon = np.deg2rad(latitudes), np.deg2rad(longitudes)
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], -1)


class CoarseToFine:
    """Interpolation of fields (..., coarse points) onto the fine points (..., fine points)."""

    def __init__(self, coarse: Dataset, fine: Dataset) -> None:
        self.fine = np.stack([fine.latitudes, fine.longitudes], axis=-1)
        _, self.nearest_index = cKDTree(_unit_vectors(coarse.latitudes, coarse.longitudes)).query(
            _unit_vectors(fine.latitudes, fine.longitudes)
        )
        self.shape = tuple(coarse.field_shape)
        self.regular = is_regular_latlon(coarse.latitudes, coarse.longitudes, self.shape)
        if self.regular:
            lat = coarse.latitudes.reshape(self.shape)[:, 0]
            lon = coarse.longitudes.reshape(self.shape)[0]
            self.axes = (lat, lon)

    def nearest(self, fields: np.ndarray) -> np.ndarray:
        return fields[..., self.nearest_index]

    def bilinear(self, fields: np.ndarray) -> np.ndarray:
        if not self.regular:
            raise ValueError(
                "bilinear interpolation needs a regular lat-lon coarse grid; this one is not "
                "(use the nearest-neighbour baseline)"
            )
        grid = np.moveaxis(fields.reshape(*fields.shape[:-1], *self.shape), (-2, -1), (0, 1))
        interpolator = RegularGridInterpolator(
            self.axes, grid, method="linear", bounds_error=False, fill_value=None
        )
        return np.moveaxis(interpolator(self.fine), 0, -1)


def _downscaler_datasets(spec: dict[str, Any]) -> tuple[str, str]:
    inputs = [n for n, d in spec["datasets"].items() if len(d["forcing"]) == len(d["variables"])]
    outputs = [
        n for n, d in spec["datasets"].items() if len(d["diagnostic"]) == len(d["variables"])
    ]
    if spec.get("lead_steps") != 0 or len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(
            "downscaling scores need a downscaler with one input and one output dataset "
            "(task.name=downscaler); this model is another kind"
        )
    return inputs[0], outputs[0]


def downscale(
    artifact: str | Path,
    datasets: dict[str, Any],
    start: str,
    end: str,
    batch_size: int = 8,
) -> dict[str, Any]:
    """Predictions and baselines on the fine grid for every test date with all inputs present:
    {"model", "bilinear", "nearest", "truth"}: (date, point, variable) physical; "dates",
    "variables", "fine" (the fine dataset), "weights" (area weights) and "rule"."""
    model, metadata = load_artifact(artifact)
    spec = metadata["model_spec"]
    coarse_name, fine_name = _downscaler_datasets(spec)
    missing = sorted({coarse_name, fine_name} - set(datasets))
    if missing:
        raise ValueError(f"give the datasets {missing} (NAME=PATH) the model was trained on")
    roles = spec["datasets"]
    k = spec["input_steps"]
    samples = MultiDatasetSamples(
        {n: {"dataset": datasets[n], "variables": roles[n]["variables"]} for n in roles},
        start,
        end,
        sample_offsets(k, 0, 1),
    )
    coarse, fine = samples.samples[coarse_name].store, samples.samples[fine_name].store
    variables = model.datasets[fine_name].output_variables
    shared = [v for v in variables if v in roles[coarse_name]["variables"]]
    interpolation = CoarseToFine(coarse, fine)
    results: dict[str, list[np.ndarray]] = {"model": [], "truth": [], "bilinear": [], "nearest": []}
    for first in range(0, len(samples), batch_size):
        batch = samples.__getitems__(list(range(first, min(first + batch_size, len(samples)))))
        data = {name: values.contiguous() for name, values in batch["data"].items()}
        prediction = model.predict({coarse_name: data[coarse_name]}, batch["time"][:, -1])
        results["model"].append(prediction[fine_name][:, 0].numpy())  # first member
        truth = data[fine_name][:, -1, 0][..., model.datasets[fine_name].output_columns]
        results["truth"].append(truth.numpy())
        last = data[coarse_name][:, -1, 0].numpy()  # (B, coarse points, variables)
        for baseline in BASELINES:
            values = np.full(truth.shape, np.nan, dtype=np.float32)
            for variable in shared:
                source = roles[coarse_name]["variables"].index(variable)
                interpolated = getattr(interpolation, baseline)(last[..., source])
                values[..., variables.index(variable)] = interpolated
            results[baseline].append(values)
    graph = read_graph(artifact)
    weights, rule = area_weights(
        fine.latitudes, fine.longitudes, fine.field_shape, graph[fine_name].area_weight.numpy()
    )
    anchors = samples.samples[fine_name].indices
    return {
        **{name: np.concatenate(parts) for name, parts in results.items()},
        "dates": fine.dates[anchors],  # the anchor is the last input time
        "variables": variables,
        "interpolated": shared,
        "fine": fine,
        "weights": weights,
        "rule": rule,
    }


def score_downscaling(fields: dict[str, Any]) -> pd.DataFrame:
    """Rows (forecast, variable, level, metric, lead_time_hours=0, value, dates_scored)."""
    truth = fields["truth"][:, None]  # a single "lead" (the input time) for the metrics
    rows = []
    for name in ("model", *BASELINES):
        candidate = fields[name][:, None]
        for metric in ("rmse", "bias", "mae"):
            table = getattr(metrics, metric)(candidate, truth, fields["weights"])[0]
            for index, variable in enumerate(fields["variables"]):
                if name != "model" and variable not in fields["interpolated"]:
                    continue  # no coarse field of this name to interpolate
                rows.append(
                    {
                        "forecast": name,
                        "variable": variable,
                        "level": level_of(variable),
                        "metric": metric,
                        "lead_time_hours": 0,
                        "value": float(table[index]),
                        "dates_scored": len(truth),
                    }
                )
    return pd.DataFrame(rows)


def evaluate_downscaling(
    artifact: str | Path, datasets: dict[str, Any], start: str, end: str, out_dir: str | Path
) -> pd.DataFrame:
    """`squall evaluate-downscaling`: scores.csv, scores.json and plots/ (a scorecard of the
    model against each baseline, and a map of the first test date) in `out_dir`."""
    out_dir = Path(out_dir)
    (out_dir / "plots").mkdir(parents=True, exist_ok=True)
    fields = downscale(artifact, datasets, start, end)
    scores = score_downscaling(fields)
    write_scores(scores, out_dir)
    plot_scorecard(
        scores[scores.variable.isin(fields["interpolated"])],
        list(BASELINES),
        out_dir / "plots" / "scorecard.png",
    )
    fine, variable = fields["fine"], fields["variables"][0]
    plot_forecast_map(
        fields["model"][0, :, 0],
        fields["truth"][0, :, 0],
        fine.latitudes,
        fine.longitudes,
        tuple(fine.field_shape),
        f"{variable}, downscaled, {np.datetime_as_string(fields['dates'][0], unit='h')}",
        out_dir / "plots" / "downscaled_map.png",
    )
    return scores
