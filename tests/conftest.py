"""Fixtures shared across the suite: the embedded storm sample turned into pipeline inputs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TRAIN = ("1996-01-05T00", "1996-01-16T18")
VALIDATION = ("1996-01-17T00", "1996-01-18T18")
TEST = ("1996-01-19T00", "1996-01-20T18")

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.fixture(scope="session")
def storm_inputs(tmp_path_factory) -> dict[str, Path]:
    """Dataset, graph and statistics of the storm sample, built once per test session."""
    from squall.data.recipes import create_dataset
    from squall.data.statistics import create_statistics_file
    from squall.graphs.from_dataset import create_graph_for_dataset

    root = tmp_path_factory.mktemp("storm")
    # Recipe source paths are relative to the repository root.
    dataset = create_dataset(REPO / "configs/datasets/storm.yaml", root / "storm.zarr", REPO)
    graph = create_graph_for_dataset(
        dataset, root / "graph.pt", REPO / "configs/graphs/regional.yaml"
    )
    statistics = create_statistics_file(dataset, root / "statistics.json", *TRAIN)
    return {
        "root": root,
        "dataset": Path(dataset),
        "graph": Path(graph),
        "statistics": Path(statistics),
    }


def pipeline_overrides(inputs: dict[str, Path], output_root: Path) -> list[str]:
    """The Hydra overrides the pipeline passes, for tests that call the library directly."""
    return [
        f"system.input.dataset={inputs['dataset']}",
        f"system.input.graph={inputs['graph']}",
        f"system.input.statistics={inputs['statistics']}",
        f"system.output.root={output_root}",
        f"dataloader.training.start={TRAIN[0]}",
        f"dataloader.training.end={TRAIN[1]}",
        f"dataloader.validation.start={VALIDATION[0]}",
        f"dataloader.validation.end={VALIDATION[1]}",
        f"dataloader.test.start={TEST[0]}",
        f"dataloader.test.end={TEST[1]}",
        f"diagnostics.mlflow.tracking_uri=sqlite:///{output_root}/mlflow.db",
        f"diagnostics.mlflow.artifact_location={output_root}/mlartifacts",
    ]
