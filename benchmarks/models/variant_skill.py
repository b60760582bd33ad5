"""Skill of a model variant against a trained run: same data, graph, statistics and schedule,
a few settings changed, scored on the same test split.

Usage: python benchmarks/models/variant_skill.py results/storm NAME KEY=VALUE [KEY=VALUE ...]
       e.g. ... results/storm edge16 model.edge_latent_channels=16 model.mlp_hidden_ratio=2.6

Reads BASE/resolved.yaml (the run's resolved config) and BASE/evaluation/scores.csv, writes the
variant's config to results/variants/NAME/resolved.yaml and runs what the pipeline runs for it
(squall train, export, predict over the test split, evaluate; the split and lead time are the
storm experiment's in configs/pipeline.yaml unless given), then prints a markdown table of the
model RMSE of both runs per variable and lead, and the parameter counts.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import pandas as pd
import yaml


def set_key(config: dict, dotted: str, value: str) -> None:
    *parents, leaf = dotted.split(".")
    node = config
    for key in parents:
        node = node[key]
    # a key the base run predates is added: squall train's strict schema refuses misspellings
    node[leaf] = yaml.safe_load(value)


def run(command: list[str], log: Path) -> None:
    with log.open("a") as stream:
        stream.write("$ " + " ".join(command) + "\n")
        stream.flush()
        subprocess.run(command, check=True, stdout=stream, stderr=subprocess.STDOUT)


def model_rmse(scores_csv: Path) -> pd.Series:
    scores = pd.read_csv(scores_csv)
    rows = scores[(scores.forecast == "model") & (scores.metric == "rmse")]
    return rows.set_index(["variable", "lead_time_hours"]).value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path, help="a trained run's folder, e.g. results/storm")
    parser.add_argument("name")
    parser.add_argument("settings", nargs="+", help="KEY=VALUE overrides of resolved.yaml")
    parser.add_argument("--test", nargs=2, default=["1996-01-19T00", "1996-01-20T18"])
    parser.add_argument("--climatology", nargs=2, default=["1996-01-05T00", "1996-01-16T18"])
    parser.add_argument("--lead-time", default="24h")
    args = parser.parse_args()

    config = yaml.safe_load((args.base / "resolved.yaml").read_text())
    root = Path("results/variants") / args.name
    root.mkdir(parents=True, exist_ok=True)
    for setting in args.settings:
        key, _, value = setting.partition("=")
        set_key(config, key, value)
    config["system"]["output"]["root"] = str(root)
    resolved = root / "resolved.yaml"
    resolved.write_text(yaml.safe_dump(config, sort_keys=False))
    log = root / "run.log"
    run(["squall", "train", str(resolved)], log)
    model = root / "model.squall"
    graph = config["system"]["input"]["graph"]
    run(["squall", "export", str(root / "model.ckpt"), str(model), "--graph", graph], log)
    forecasts = root / "forecasts.zarr"
    dataset = config["system"]["input"]["dataset"]
    start, end = args.test
    run(
        ["squall", "predict", str(model), "--dataset", dataset, "--start", start, "--end", end]
        + ["--lead-time", args.lead_time, "--out", str(forecasts)],
        log,
    )
    clim_start, clim_end = args.climatology
    run(
        ["squall", "evaluate", str(forecasts), "--truth", dataset]
        + ["--climatology-start", clim_start, "--climatology-end", clim_end]
        + ["--out", str(root / "evaluation")],
        log,
    )
    base, variant = (
        model_rmse(args.base / "evaluation" / "scores.csv"),
        model_rmse(root / "evaluation" / "scores.csv"),
    )
    summaries = [
        json.loads((folder / "training_summary.json").read_text()) for folder in (args.base, root)
    ]
    counts = ", ".join(f"{s['parameters']:,}" for s in summaries)
    losses = " vs ".join(f"{s['best_val_loss']:.4f}" for s in summaries)
    print(f"parameters ({args.base.name}, {args.name}): {counts}; best validation loss {losses}")
    print(f"| variable | lead (h) | {args.base.name} | {args.name} | change |")
    print("|---|---|---|---|---|")
    for (variable, lead), value in base.items():
        other = variant[(variable, lead)]
        change = 100 * (other / value - 1)
        print(f"| {variable} | {lead} | {value:.4g} | {other:.4g} | {change:+.1f} % |")


if __name__ == "__main__":
    main()
