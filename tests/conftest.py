"""Fixtures shared across the suite: the embedded storm sample turned into pipeline inputs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from storm_sample import REPO, TRAIN

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
        REPO / "configs/training/graph/limited_area.yaml", dataset, root / "graph.pt"
    )
    statistics = create_statistics_file(dataset, root / "statistics.json", *TRAIN)
    return {
        "root": root,
        "dataset": Path(dataset),
        "graph": Path(graph),
        "statistics": Path(statistics),
    }
