"""Temporal interpolation vs linear interpolation in time, on held-out days.

Usage: python benchmarks/tasks_interpolation.py results/era5_uk_interpolation/model.squall \
           results/datasets/era5_uk_2t_hourly.zarr --start 2019-03-26T00 --end 2019-03-31T23

Windows start at every synoptic hour (00, 06, 12, 18 UTC) of the period whose inputs and targets
are all present: the inputs are what a 6-hourly archive holds, the targets the hours between.
Prints a markdown table (RMSE per target hour and variable, area-weighted by cos(latitude)) and
writes it as CSV next to the model (<model>/../interpolation_scores.csv) unless --out says where.
"""

from __future__ import annotations

import argparse
import datetime
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from squall.data.store import open_dataset
from squall.evaluation.area import latitude_weights
from squall.evaluation.metrics import rmse
from squall.export.artifact import load_artifact


def interpolation_scores(artifact: str, dataset: str, start: str, end: str) -> pd.DataFrame:
    model, metadata = load_artifact(artifact)
    if model.task != "interpolator":
        raise SystemExit(f"{artifact} is a {model.task}, not an interpolator")
    store = open_dataset(dataset, start=start, end=end)
    times = metadata["model_spec"]["explicit_times"]  # in steps of the dataset
    if store.frequency != datetime.timedelta(hours=1):
        raise SystemExit(f"{dataset} is not hourly; this script counts target times in hours")
    first, last = times["input"]
    offsets = np.asarray([first, last, *times["target"]])
    hours = store.dates.astype("datetime64[h]").astype(np.int64)
    anchors = [
        i
        for i in range(len(store) - offsets.max())
        if hours[i] % (last - first) == 0 and not store.missing.intersection((i + offsets).tolist())
    ]
    columns = [store.name_to_index[v] for v in metadata["variables"]["all"]]
    epoch = store.dates.astype("datetime64[s]").astype(np.int64)
    fractions = torch.tensor([(t - first) / (last - first) for t in times["target"]])
    predicted, linear, truth = [], [], []
    for anchor in anchors:
        dates = anchor + offsets
        fields = store.read(dates.tolist())[:, columns]  # (T, V, E, G)
        x = torch.from_numpy(np.ascontiguousarray(fields.transpose(0, 2, 3, 1)))[None]
        inputs = model.normalizer.normalise(x[:, :2]).expand(len(fractions), -1, -1, -1, -1)
        with torch.no_grad():
            out = model.forward_normalised(inputs, torch.from_numpy(epoch[dates[2:]]), fractions)
        out = model.normalizer.denormalise(out, model.output_columns)  # (targets, E, G, V_out)
        outputs = x[0][..., model.output_columns]
        predicted.append(out[:, 0].numpy())
        weight = fractions[:, None, None, None]
        linear.append(torch.lerp(outputs[0], outputs[1], weight)[:, 0].numpy())
        truth.append(outputs[2:, 0].numpy())
    weights = latitude_weights(store.latitudes)
    truth_array = np.stack(truth)
    rows = []
    for name, forecast in (("model", predicted), ("linear", linear)):
        scores = rmse(np.stack(forecast), truth_array, weights)  # (target, variable)
        for t, offset in enumerate(times["target"]):
            for v, variable in enumerate(metadata["variables"]["output"]):
                rows.append(
                    {
                        "forecast": name,
                        "variable": variable,
                        "target_hour": int(offset - first),
                        "rmse": float(scores[t, v]),
                        "windows": len(anchors),
                    }
                )
    return pd.DataFrame(rows)


def markdown(scores: pd.DataFrame) -> str:
    table = scores.pivot_table(
        index=["variable", "target_hour"], columns="forecast", values="rmse"
    ).reset_index()
    lines = [
        "| variable | target hour | model RMSE | linear RMSE | model / linear |",
        "|---|---|---|---|---|",
    ]
    for _, row in table.iterrows():
        lines.append(
            f"| {row.variable} | +{row.target_hour} h | {row.model:.3f} | {row.linear:.3f} | "
            f"{row.model / row.linear:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("dataset")
    parser.add_argument("--start", required=True)
    parser.add_argument("--end", required=True)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    scores = interpolation_scores(args.model, args.dataset, args.start, args.end)
    out = Path(args.out or Path(args.model).parent / "interpolation_scores.csv")
    temporary = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    scores.to_csv(temporary, index=False)
    os.replace(temporary, out)
    print(f"{scores.windows.iloc[0]} windows, {args.start}..{args.end}\n")
    print(markdown(scores))


if __name__ == "__main__":
    main()
