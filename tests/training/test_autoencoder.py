"""Autoencoder: every output passes through the hidden mesh (no skip, no residual)."""

from __future__ import annotations

import pytest
import torch
from tiny_graph import tiny_graph

from squall.config.schema import TaskConfig
from squall.evaluation.reconstruction import compression_ratio
from squall.models.interface import ForecastModel
from squall.training.losses import build_loss
from squall.training.tasks import build_task, task_model_spec, task_offsets

VARIABLES = ["msl", "t"]


def autoencoder(decoder_skip: bool = False) -> ForecastModel:
    graph = tiny_graph(num_data=30, num_hidden=10)
    # Data node 0 sends nothing to the hidden mesh: only a skip could carry its value out.
    encoder = graph["data", "to", "hidden"]
    keep = encoder.edge_index[0] != 0
    encoder.edge_index, encoder.edge_attr = encoder.edge_index[:, keep], encoder.edge_attr[keep]
    spec = {
        "variables": VARIABLES,
        "forcing": [],
        "diagnostic": [],
        "computed_forcings": [],
        "input_steps": 1,
        "timestep_seconds": 6 * 3600,
        "network": {"hidden_channels": 8, "processor_layers": 0},
    }
    spec = task_model_spec(spec, TaskConfig(name="autoencoder", input_steps=1), (30,))
    spec["network"]["decoder_skip"] = decoder_skip
    statistics = {"mean": [0.0] * 2, "stdev": [1.0] * 2, "tendency_stdev": [1.0] * 2}
    model = ForecastModel(graph, spec, statistics)
    last = [m for m in model.network.output_mlp.modules() if isinstance(m, torch.nn.Linear)][-1]
    torch.nn.init.normal_(last.weight, std=0.5)
    return model


def test_reconstruction_passes_through_the_hidden_mesh_only():
    torch.manual_seed(0)
    x = torch.randn(2, 1, 1, 30, 2)
    changed = x.clone()
    changed[:, :, :, 0] += 5.0  # the node the encoder does not read
    with torch.no_grad():
        bottleneck = autoencoder(decoder_skip=False)
        assert torch.equal(
            bottleneck.forward_normalised(x, torch.zeros(2)),
            bottleneck.forward_normalised(changed, torch.zeros(2)),
        )
        # The forecaster's skip (and residual) would hand the value straight to the output.
        leaky = autoencoder(decoder_skip=True)
        assert not torch.allclose(
            leaky.forward_normalised(x, torch.zeros(2)),
            leaky.forward_normalised(changed, torch.zeros(2)),
        )


def test_autoencoder_task_shapes_and_metric_names():
    model = autoencoder()
    loss = build_loss({"name": "mse", "scalers": []}, {})
    rollout = {"start": 1, "maximum": 1}
    config = {
        "task": {"name": "autoencoder", "rollout": rollout, "validation_rollout": 1},
        "lineage": {},
    }
    task = build_task(model, config, {}, loss, torch.ones(30), 6 * 3600)
    batch = {"data": torch.randn(3, 1, 1, 30, 2), "time": torch.zeros(3, 1, dtype=torch.long)}
    reconstruction, target, skip = task._roll_out(batch, 1)
    assert reconstruction.shape == target.shape == skip.shape == (3, 1, 1, 30, 2)
    assert torch.equal(target, batch["data"])  # unit statistics: normalised = physical
    assert sorted(task.val_mse) == ["msl__reconstruction", "t__reconstruction"]
    assert task_offsets(TaskConfig(name="autoencoder", input_steps=1), 1, 1).tolist() == [0]


def test_compression_ratio_and_settings():
    # storm: 726 points x 6 variables into 125 hidden nodes x 16 channels (limited_area_coarse)
    assert compression_ratio(726, 6, 125, 16) == pytest.approx(2.178)
    with pytest.raises(ValueError, match="input_steps must be 1"):
        TaskConfig(name="autoencoder", input_steps=2)
