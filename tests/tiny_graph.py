"""A small hand-made graph with the contract's node and edge sets, for tests that need a model
but not the graph builders."""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch_geometric.data import HeteroData


def _xyz(latlon: np.ndarray) -> np.ndarray:
    lat, lon = latlon[:, 0], latlon[:, 1]
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], -1)


def tiny_graph(num_data: int = 30, num_hidden: int = 10, neighbours: int = 3, seed: int = 0):
    """Random points on a patch of North America, each target linked to its 3 nearest sources."""
    rng = np.random.default_rng(seed)

    def points(count: int) -> np.ndarray:
        return np.stack([rng.uniform(0.3, 0.9, count), rng.uniform(-2.0, -1.2, count)], 1)

    data, hidden = points(num_data), points(num_hidden)
    graph = HeteroData()
    graph["data"].x = torch.tensor(data, dtype=torch.float32)
    graph["data"].area_weight = torch.ones(num_data)
    graph["hidden"].x = torch.tensor(hidden, dtype=torch.float32)
    for edge_type, source, target in (
        (("data", "to", "hidden"), data, hidden),
        (("hidden", "to", "hidden"), hidden, hidden),
        (("hidden", "to", "data"), hidden, data),
    ):
        _, nearest = cKDTree(_xyz(source)).query(_xyz(target), k=neighbours)
        targets = np.repeat(np.arange(len(target)), neighbours)
        edge_index = torch.tensor(np.stack([nearest.ravel(), targets]), dtype=torch.long)
        graph[edge_type].edge_index = edge_index
        graph[edge_type].edge_attr = torch.rand(
            edge_index.shape[1], 3, generator=torch.Generator().manual_seed(seed)
        )
    return graph


# statistics of tiny_forecast_model's two variables (what a task is built with beside it)
TINY_STATISTICS = {"mean": [0.0, 0.0], "stdev": [1.0, 1.0], "tendency_stdev": [1.0, 1.0]}


def tiny_forecast_model(**network):
    """A ForecastModel of two variables ("a", "b"), one 6-hourly input step, 16 channels and
    one processor layer on tiny_graph(); `network` adds or overrides network settings."""
    from squall.models.interface import ForecastModel

    spec = {
        "variables": ["a", "b"],
        "forcing": [],
        "diagnostic": [],
        "computed_forcings": [],
        "input_steps": 1,
        "timestep_seconds": 21600,
        "network": {"hidden_channels": 16, "processor_layers": 1, **network},
    }
    return ForecastModel(tiny_graph(), spec, TINY_STATISTICS)
