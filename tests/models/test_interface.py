"""ForecastModel: physical units in and out, persistence at start, forcings kept in rollout."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree
from torch_geometric.data import HeteroData

from squall.models.computed_forcings import computed_forcings
from squall.models.interface import ForecastModel


def _xyz(lat, lon):
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], -1)


def _graph(num_data=30, num_hidden=10, seed=0) -> HeteroData:
    rng = np.random.default_rng(seed)
    data = np.stack([rng.uniform(0.3, 0.9, num_data), rng.uniform(-2, -1.2, num_data)], 1)
    hidden = np.stack([rng.uniform(0.3, 0.9, num_hidden), rng.uniform(-2, -1.2, num_hidden)], 1)
    graph = HeteroData()
    graph["data"].x = torch.tensor(data, dtype=torch.float32)
    graph["data"].area_weight = torch.ones(num_data)
    graph["hidden"].x = torch.tensor(hidden, dtype=torch.float32)

    def knn(source, target, k):
        _, nearest = cKDTree(_xyz(*source.T)).query(_xyz(*target.T), k=k)
        targets = np.repeat(np.arange(len(target)), k)
        return torch.tensor(np.stack([nearest.ravel(), targets]), dtype=torch.long)

    for edge_type, source, target in (
        (("data", "to", "hidden"), data, hidden),
        (("hidden", "to", "hidden"), hidden, hidden),
        (("hidden", "to", "data"), hidden, data),
    ):
        edge_index = knn(source, target, 3)
        graph[edge_type].edge_index = edge_index
        graph[edge_type].edge_attr = torch.rand(edge_index.shape[1], 3)
    return graph


SPEC = {
    "variables": ["a", "b", "f", "d"],
    "forcing": ["f"],
    "diagnostic": ["d"],
    "computed_forcings": ["cos_local_time", "sin_julian_day"],
    "input_steps": 2,
    "timestep_seconds": 21600,
    "network": {"hidden_channels": 16, "processor_layers": 1},
}
STATS = {
    "mean": [100.0, -3.0, 5.0, 1.0],
    "stdev": [10.0, 2.0, 1.0, 0.5],
    "tendency_stdev": [1.0, 0.5, 0.2, 0.1],
}


def test_roles_and_initial_persistence():
    model = ForecastModel(_graph(), SPEC, STATS)
    assert model.input_variables == ["a", "b", "f"]
    assert model.output_variables == ["a", "b", "d"]
    x = torch.randn(2, 2, 1, 30, 4) * 5 + 50
    out = model.rollout(
        x, torch.tensor([0, 21600]), steps=2, known_future=torch.randn(2, 2, 1, 30, 4)
    )
    assert out.shape == (2, 2, 1, 30, 3)
    # Zero-initialised output layer: prognostic variables start as persistence.
    torch.testing.assert_close(out[:, 0, ..., :2], x[:, -1, ..., :2])
    torch.testing.assert_close(out[:, 1, ..., :2], x[:, -1, ..., :2])


def test_rollout_feeds_forcings_from_data_and_predictions_back():
    model = ForecastModel(_graph(), SPEC, STATS)
    torch.nn.init.normal_(list(model.network.output_mlp.modules())[-1].weight)
    x = torch.randn(1, 2, 1, 30, 4)
    future = torch.randn(1, 2, 1, 30, 4)
    rolled = model.rollout(x, torch.tensor([0]), steps=2, known_future=future)
    # Step 2 by hand: predicted prognostic a, b, and the forcing f of the first new time.
    first = model.normalizer.denormalise(
        model.forward_normalised(model.normalizer.normalise(x), torch.tensor([21600])),
        model.output_columns,
    )
    state = future[:, 0].clone()
    state[..., :2] = first[..., :2]
    second = model.normalizer.denormalise(
        model.forward_normalised(
            model.normalizer.normalise(torch.stack([x[:, 1], state], 1)), torch.tensor([43200])
        ),
        model.output_columns,
    )
    torch.testing.assert_close(rolled[:, 1], second, rtol=1e-4, atol=1e-4)


def test_rollout_without_forcing_data_is_refused():
    model = ForecastModel(_graph(), SPEC, STATS)
    with pytest.raises(ValueError, match="forcing"):
        model.rollout(torch.randn(1, 2, 1, 30, 4), torch.tensor([0]), steps=1)


def test_computed_forcings_values():
    lat = torch.tensor([0.0, 0.5])
    lon = torch.tensor([0.0, math.pi])
    noon = torch.tensor([12 * 3600])  # 1970-01-01T12Z
    values = computed_forcings(["cos_local_time", "cos_latitude"], noon, lat, lon)
    assert values.shape == (1, 2, 2)
    # Noon UTC at lon 0 is local noon; at lon 180 it is local midnight.
    torch.testing.assert_close(values[0, :, 0], torch.tensor([-1.0, 1.0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(values[0, :, 1], torch.cos(lat))
    with pytest.raises(ValueError, match="unknown computed forcings"):
        computed_forcings(["moon_phase"], noon, lat, lon)
