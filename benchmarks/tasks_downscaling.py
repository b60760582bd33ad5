"""Downscaling and several datasets at once on the storm sample, end to end, with timings.

downscaling: the storm store thinned by N (every N-th row and column: 2.5 x 5 deg for N=2) is
the coarse input, the storm store itself (1.25 x 2.5 deg) the fine target. Graph, statistics
(training split), config check, training (configs/training/downscaling.yaml), export, and
scores on the test split against bilinear and nearest-neighbour interpolation of the coarse
input (squall.evaluation.downscaling).
multi_dataset: surface fields on the fine grid + 500 hPa winds on the thinned grid, as one
forecaster (configs/training/multi_dataset.yaml); validation RMSE per dataset and variable.

    python benchmarks/tasks_downscaling.py [--thinning 2] [--epochs 10] [--out results/...]

Prints a JSON summary and writes it to OUT/summary.json. Needs results/datasets/storm.zarr
(`make run`, or it is created from configs/datasets/storm.yaml).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import yaml

from squall.config.resolved import read_resolved
from squall.data.recipes import create_dataset
from squall.data.statistics import create_statistics_file
from squall.evaluation.downscaling import evaluate_downscaling
from squall.export.artifact import load_artifact, read_graph, write_artifact
from squall.export.from_checkpoint import export_checkpoint
from squall.graphs.multi_dataset import create_multi_dataset_graph_file
from squall.training.preflight import validate_to_file
from squall.training.trainer import train

REPO = Path(__file__).resolve().parents[1]
SPLITS = {
    "training": ("1996-01-05T00", "1996-01-16T18"),
    "validation": ("1996-01-17T00", "1996-01-18T18"),
    "test": ("1996-01-19T00", "1996-01-20T18"),
}


def _timed(timings: dict, name: str, call):
    start = time.perf_counter()
    value = call()
    timings[name] = round(time.perf_counter() - start, 1)
    return value


def untrained_start(model_dir: Path, out_dir: Path) -> Path:
    """The exported downscaler with its output heads zeroed: what it predicts before training
    (the coarse fields linearly interpolated onto the fine grid, see MultiDatasetModel)."""
    model, metadata = load_artifact(model_dir)
    for head in model.network.output_mlps.values():
        for parameter in [m for m in head.modules() if isinstance(m, torch.nn.Linear)][
            -1
        ].parameters():
            torch.nn.init.zeros_(parameter)
    provenance = {
        key: metadata[key] for key in ("lineage", "training", "config") if key in metadata
    }
    return write_artifact(
        model,
        read_graph(model_dir),
        metadata["statistics"],
        out_dir,
        provenance,
        metadata["graph"]["coordinates_hash"],
    )


def run(template: str, specs: dict, out: Path, epochs: int) -> dict:
    timings: dict[str, float] = {}
    out.mkdir(parents=True, exist_ok=True)
    graph = _timed(
        timings,
        "graph_s",
        lambda: create_multi_dataset_graph_file(
            REPO / "configs/training/graph/multi_dataset.yaml", specs, out / "graph.pt"
        ),
    )
    overrides = [f"system.input.graph={graph}", f"system.output.root={out}"]
    for name, spec in specs.items():
        statistics = create_statistics_file(
            spec, out / f"statistics_{name}.json", *SPLITS["training"]
        )
        flow = yaml.safe_dump(spec, default_flow_style=True, width=1000).strip()
        overrides += [
            f"system.input.datasets.{name}.dataset={flow}",
            f"system.input.datasets.{name}.statistics={statistics}",
        ]
    for stage, (start, end) in SPLITS.items():
        overrides += [f"dataloader.{stage}.start={start}", f"dataloader.{stage}.end={end}"]
    overrides += [
        f"training.max_epochs={epochs}",
        f"diagnostics.mlflow.tracking_uri=sqlite:///{out}/mlflow.db",
        f"diagnostics.mlflow.artifact_location={out}/mlartifacts",
        "diagnostics.plots.enabled=false",
    ]
    resolved = out / "resolved.yaml"
    validate_to_file(template, overrides, REPO / "configs/training", resolved)
    best = _timed(timings, "train_s", lambda: train(read_resolved(resolved)))
    summary = json.loads((out / "training_summary.json").read_text())
    profile = json.loads((out / "profile.json").read_text())
    result = {
        "template": template,
        "datasets": specs,
        "timings": timings,
        "steps": summary["steps"],
        "parameters": summary["parameters"],
        "best_val_loss": summary["best_val_loss"],
        "samples_per_second": profile["samples_per_second"],
        "peak_memory_mib": profile["peak_memory_mib"],
    }
    model = _timed(timings, "export_s", lambda: export_checkpoint(best, out / "model.squall"))
    if template == "downscaling":
        scores = _timed(
            timings,
            "evaluate_s",
            lambda: evaluate_downscaling(model, specs, *SPLITS["test"], out / "evaluation"),
        )
        start = evaluate_downscaling(
            untrained_start(model, out / "start.squall"), specs, *SPLITS["test"], out / "start"
        )
        rmse = scores[scores.metric == "rmse"]
        result["test_rmse"] = {
            variable: dict(zip(group.forecast, group.value.round(4), strict=True))
            for variable, group in rmse.groupby("variable", sort=False)
        }
        for row in start[(start.metric == "rmse") & (start.forecast == "model")].itertuples():
            result["test_rmse"][row.variable]["untrained_start"] = round(row.value, 4)
        result["dates_scored"] = int(scores.dates_scored.iloc[0])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--thinning", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", default="results/benchmarks_downscaling")
    parser.add_argument("--only", choices=["downscaling", "multi_dataset"])
    args = parser.parse_args()
    storm = REPO / "results/datasets/storm.zarr"
    if not storm.exists():
        create_dataset(REPO / "configs/datasets/storm.yaml", storm, REPO)
    storm = str(storm)
    runs = {
        "downscaling": {
            "coarse": {"dataset": storm, "thinning": args.thinning},
            "fine": {"dataset": storm},
        },
        "multi_dataset": {
            "surface": {"dataset": storm, "select": ["msl", "t_surface", "u_surface", "v_surface"]},
            "upper": {"dataset": storm, "select": ["u_500", "v_500"], "thinning": args.thinning},
        },
    }
    out = Path(args.out)
    results = {
        template: run(template, specs, out / template, args.epochs)
        for template, specs in runs.items()
        if args.only in (None, template)
    }
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=1)
    (out / "summary.json").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
