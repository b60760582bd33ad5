"""A small real multi-dataset graph (squall.graphs builders) and model spec, for tests of the
multi-dataset model and task: a fine 10 x 8 regional grid and that grid thinned by 2."""

from __future__ import annotations

import numpy as np

from squall.graphs.data_nodes import DataNodes
from squall.graphs.multi_dataset import create_multi_dataset_graph

RECIPE = {
    "hidden": {"refinement": 4, "margin_km": 300.0},
    "encoder": {"type": "knn", "k": 3},
    "decoder": {"type": "knn", "k": 3},
}


def grids() -> dict[str, DataNodes]:
    lat, lon = np.meshgrid(np.arange(30, 42.5, 1.25), np.arange(-100, -80, 2.5), indexing="ij")
    return {
        "coarse": DataNodes(lat[::2, ::2].ravel(), lon[::2, ::2].ravel()),
        "fine": DataNodes(lat.ravel(), lon.ravel()),
    }


def multi_dataset_graph():
    return create_multi_dataset_graph(grids(), RECIPE)


def statistics(variables: list[str]) -> dict[str, list[float]]:
    count = len(variables)
    return {
        "mean": [10.0 * (i + 1) for i in range(count)],
        "stdev": [2.0] * count,
        "tendency_stdev": [0.5] * count,
    }


def spec(datasets: dict, lead_steps: int, input_steps: int = 1) -> dict:
    return {
        "datasets": datasets,
        "computed_forcings": ["cos_local_time", "sin_local_time"],
        "input_steps": input_steps,
        "timestep_seconds": 6 * 3600,
        "lead_steps": lead_steps,
        "network": {"hidden_channels": 16, "processor_layers": 1, "trainable_node_channels": 2},
    }


DOWNSCALER = {
    "coarse": {"variables": ["t", "u"], "forcing": ["t", "u"], "diagnostic": []},
    "fine": {"variables": ["t"], "forcing": [], "diagnostic": ["t"]},
}
FORECASTER = {
    "coarse": {"variables": ["u", "v"], "forcing": [], "diagnostic": []},
    "fine": {"variables": ["t", "lsm"], "forcing": ["lsm"], "diagnostic": []},
}
