"""Autoencoder: compression ratio and reconstruction error per variable on held-out dates.

Usage: python benchmarks/tasks_autoencoder.py results/storm_autoencoder/model.squall \
           results/datasets/storm.zarr --start 1996-01-19T00 --end 1996-01-20T18

Every present date of the period is encoded onto the hidden mesh and decoded back. Prints a
markdown table: RMSE of the reconstruction per variable (area-weighted by cos(latitude)), next
to the RMSE of the training mean (what a model that learnt nothing would give), and writes it
as CSV next to the model (<model>/../autoencoder_scores.csv) unless --out says where.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from squall.data.store import open_dataset
from squall.evaluation.area import latitude_weights
from squall.evaluation.metrics import rmse
from squall.export.artifact import load_artifact, read_graph
from squall.training.autoencoder import compression_ratio


def autoencoder_scores(
    artifact: str, dataset: str, start: str, end: str
) -> tuple[pd.DataFrame, float]:
    model, metadata = load_artifact(artifact)
    if model.task != "autoencoder":
        raise SystemExit(f"{artifact} is a {model.task}, not an autoencoder")
    graph = read_graph(artifact)
    store = open_dataset(dataset, start=start, end=end)
    present = [i for i in range(len(store)) if i not in store.missing]
    columns = [store.name_to_index[v] for v in metadata["variables"]["all"]]
    fields = store.read(present)[:, columns]  # (dates, V, E, G)
    x = torch.from_numpy(np.ascontiguousarray(fields.transpose(0, 2, 3, 1)))[:, None]
    epoch = torch.from_numpy(store.dates[present].astype("datetime64[s]").astype(np.int64))
    with torch.no_grad():
        out = model.forward_normalised(model.normalizer.normalise(x), epoch)
        out = model.normalizer.denormalise(out, model.output_columns)
        mean = model.normalizer.denormalise(torch.zeros_like(out), model.output_columns)
    truth = x[:, 0, 0][..., model.output_columns].numpy()[:, None]  # (dates, 1, G, V)
    weights = latitude_weights(store.latitudes)
    model_rmse = rmse(out[:, None, 0].numpy(), truth, weights)[0]
    mean_rmse = rmse(mean[:, None, 0].numpy(), truth, weights)[0]
    units = store.metadata.get("variables_metadata", {})
    rows = [
        {
            "variable": variable,
            "units": units.get(variable, {}).get("units", ""),
            "rmse": float(model_rmse[v]),
            "rmse_training_mean": float(mean_rmse[v]),
            "dates": len(present),
        }
        for v, variable in enumerate(model.output_variables)
    ]
    ratio = compression_ratio(
        graph["data"].num_nodes,
        len(model.input_variables),
        graph["hidden"].num_nodes,
        metadata["model_spec"]["network"]["hidden_channels"],
    )
    return pd.DataFrame(rows), ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("dataset")
    parser.add_argument("--start", required=True)
    parser.add_argument("--end", required=True)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    scores, ratio = autoencoder_scores(args.model, args.dataset, args.start, args.end)
    scores["compression_ratio"] = ratio
    out = Path(args.out or Path(args.model).parent / "autoencoder_scores.csv")
    temporary = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    scores.to_csv(temporary, index=False)
    os.replace(temporary, out)
    print(
        f"compression ratio {ratio:.2f}; {scores.dates.iloc[0]} dates, {args.start}..{args.end}\n"
    )
    print("| variable | units | reconstruction RMSE | training-mean RMSE | ratio |")
    print("|---|---|---|---|---|")
    for row in scores.itertuples():
        print(
            f"| {row.variable} | {row.units} | {row.rmse:.3g} | {row.rmse_training_mean:.3g} | "
            f"{row.rmse / row.rmse_training_mean:.2f} |"
        )


if __name__ == "__main__":
    main()
