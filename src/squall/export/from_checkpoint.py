"""Export a training checkpoint: rebuild the model from its hyperparameters and its graph file."""

from __future__ import annotations

from pathlib import Path

import torch

from squall.config.lineage import file_hash
from squall.export.artifact import write_artifact
from squall.graphs.io import load_graph
from squall.models.multi_dataset import model_from_spec

_PREFIX = "model."


def export_checkpoint(
    checkpoint_path: str | Path,
    out_dir: str | Path,
    graph_path: str | Path | None = None,
    allow_lineage_mismatch: bool = False,
) -> Path:
    # Our own checkpoints hold only tensors and plain containers: no pickled objects needed.
    checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    hyper = checkpoint["hyper_parameters"]
    config = hyper["config"]
    provenance = checkpoint.get("squall", {})
    lineage = provenance.get("lineage", config.get("lineage", {}))
    graph_path = Path(graph_path or config["system"]["input"]["graph"])
    if (
        "graph" in lineage
        and file_hash(graph_path) != lineage["graph"]
        and not (allow_lineage_mismatch)
    ):
        raise ValueError(
            f"the graph {graph_path} (hash {file_hash(graph_path)}) is not the one this model was "
            f"trained with (hash {lineage['graph']}); pass the training graph with --graph"
        )
    graph, graph_info = load_graph(graph_path)
    model = model_from_spec(graph, hyper["model_spec"], hyper["statistics"])
    weights = (
        checkpoint.get("ema_state_dict")
        or {  # the EMA of the weights when there is one
            k[len(_PREFIX) :]: v
            for k, v in checkpoint["state_dict"].items()
            if k.startswith(_PREFIX)
        }
    )
    model.load_state_dict(weights, strict=True)
    return write_artifact(
        model,
        graph,
        hyper["statistics"],
        out_dir,
        provenance={
            "lineage": lineage,
            "training": {
                "mlflow_run_id": provenance.get("mlflow_run_id"),
                "checkpoint": Path(checkpoint_path).name,
                "epoch": checkpoint.get("epoch"),
                "global_step": checkpoint.get("global_step"),
            },
            "config": config,
        },
        coordinates_hash=graph_info["coordinates_hash"],
    )
