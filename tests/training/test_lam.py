"""Limited-area models: the boundary ring and the outer points are the true state during
rollout, and the loss and scores weigh the interior only."""

from __future__ import annotations

import pytest
import torch
from tiny_graph import tiny_graph

from squall.config.schema import TaskConfig
from squall.models.boundary import forced_points, ring_mask
from squall.models.interface import ForecastModel
from squall.training.losses import build_loss
from squall.training.scalers import build_scalers
from squall.training.tasks import build_task, task_model_spec

FIELD = (5, 6)  # the tiny graph's 30 data nodes seen as a 5 x 6 field
VARIABLES = ["msl", "t", "sst"]
# Not the identity: training and predict must normalise the boundary alike.
STATISTICS = {"mean": [1.0, -2.0, 0.5], "stdev": [2.0, 0.5, 3.0], "tendency_stdev": [1.0] * 3}


def lam_model(boundary: dict | None, field_shape: tuple[int, int] = FIELD) -> ForecastModel:
    graph = tiny_graph(num_data=30, num_hidden=10)
    graph["data"].regional = torch.arange(30) < 24  # a cut-out: 24 regional points first
    spec = {
        "variables": VARIABLES,
        "forcing": [],
        "diagnostic": [],
        "computed_forcings": [],
        "input_steps": 2,
        "timestep_seconds": 6 * 3600,
        "network": {"hidden_channels": 8, "processor_layers": 1},
    }
    task = TaskConfig(boundary=boundary)
    spec = task_model_spec(spec, task, field_shape)
    model = ForecastModel(graph, spec, STATISTICS)
    # A network that is not persistence, so that forced and free points differ.
    last = [m for m in model.network.output_mlp.modules() if isinstance(m, torch.nn.Linear)][-1]
    torch.nn.init.normal_(last.weight, std=0.5)
    return model


def test_ring_mask_marks_the_outer_rows_and_columns():
    ring = ring_mask((33, 22), 2).reshape(33, 22)
    assert int(ring.sum()) == 33 * 22 - 29 * 18
    assert ring[:2].all() and ring[-2:].all() and ring[:, :2].all() and ring[:, -2:].all()
    assert not ring[2:-2, 2:-2].any()
    with pytest.raises(ValueError, match="no interior"):
        ring_mask((5, 6), 3)
    with pytest.raises(ValueError, match="2-D"):
        ring_mask((726,), 1)


def test_forced_points_combine_the_domain_mask_and_its_ring():
    graph = tiny_graph(num_data=30, num_hidden=10)
    graph["data"].regional = torch.arange(30) < 20  # 20 regional points = a 4 x 5 field
    forced = forced_points(
        graph, {"ring_width": 1, "field_shape": [4, 5], "domain_mask": "regional"}
    )
    assert forced[20:].all()  # outside the domain
    interior = (~forced).nonzero().flatten().tolist()
    assert interior == [6, 7, 8, 11, 12, 13]  # rows 1-2, columns 1-3 of the 4 x 5 region
    with pytest.raises(ValueError, match="not an attribute"):
        forced_points(graph, {"ring_width": 0, "domain_mask": "cutout_mask"})


def test_rollout_overwrites_the_boundary_with_the_truth():
    model = lam_model({"ring_width": 1}).eval()
    forced = ring_mask(FIELD, 1)
    torch.manual_seed(0)
    x = torch.randn(2, 2, 1, 30, 3)
    truth = torch.randn(2, 3, 1, 30, 3)
    with pytest.raises(ValueError, match="boundary"):
        model.rollout(x, torch.zeros(2), 3)
    forecast = model.rollout(x, torch.zeros(2), 3, known_future=truth)
    assert torch.allclose(forecast[:, :, :, forced], truth[:, :, :, forced], atol=1e-6)
    assert not torch.allclose(forecast[:, :, :, ~forced], truth[:, :, :, ~forced], atol=1e-2)
    # Without a boundary the same network predicts the ring freely.
    free = lam_model(None).eval()
    free.load_state_dict(model.state_dict())
    unforced = free.rollout(x, torch.zeros(2), 3)
    assert not torch.allclose(unforced[:, :, :, forced], truth[:, :, :, forced], atol=1e-2)


def test_training_loss_and_gradient_come_from_the_interior_only():
    model = lam_model({"ring_width": 1, "domain_mask": "regional"}, field_shape=(4, 6))
    forced = model.forced
    assert int(forced.sum()) == 30 - 2 * 4  # 6 outer points + the ring of the 4 x 6 region
    attributes = {"area_weight": torch.ones(30), "interior": (~forced).float()}
    scalers = build_scalers(
        {"area": {"node_attribute": "area_weight"}, "domain": {"node_attribute": "interior"}},
        model.output_variables,
        {},
        attributes,
    )
    loss = build_loss({"name": "mse", "scalers": ["*"]}, scalers)
    config = {
        "task": {
            "name": "forecaster",
            "rollout": {"start": 2, "maximum": 2},
            "validation_rollout": 2,
        },
        "lineage": {},
    }
    task = build_task(model, config, {}, loss, torch.ones(30), 6 * 3600)
    assert torch.equal(task.metric_weights > 0, ~forced)  # scores weigh the interior only
    torch.manual_seed(1)
    batch = {"data": torch.randn(3, 4, 1, 30, 3), "time": torch.zeros(3, 4, dtype=torch.long)}
    predictions, targets, skip = task._roll_out(batch, 2)
    assert predictions.shape == targets.shape == (3, 2, 1, 30, 3)
    assert torch.equal(predictions[:, :, :, forced], targets[:, :, :, forced])
    value = loss(predictions, targets, skip)
    # A weighted mean over the interior points, variables, lead times and samples.
    interior = (predictions - targets)[:, :, :, ~forced].square().mean()
    assert float(value.detach()) == pytest.approx(float(interior.detach()), rel=1e-5)
    # The truth at the forced points of the inputs still reaches the interior, but the targets
    # there add no gradient: a change of the forced targets leaves the loss unchanged.
    shifted = dict(batch, data=batch["data"].clone())
    shifted["data"][:, 2:, :, forced] += 10.0
    again = loss(*task._roll_out(shifted, 1)[:2])
    first_step = loss(*task._roll_out(batch, 1)[:2])
    assert float(again.detach()) == pytest.approx(float(first_step.detach()), rel=1e-6)


def test_boundary_is_rejected_outside_the_forecaster():
    with pytest.raises(ValueError, match="applies to the forecaster"):
        TaskConfig(name="autoencoder", input_steps=1, boundary={"ring_width": 1})


def test_target_forcing_shows_the_network_the_boundary_of_the_predicted_time_only():
    model = lam_model({"ring_width": 1, "target_forcing": True}).eval()
    forced = model.forced
    torch.manual_seed(2)
    x, target = torch.randn(2, 2, 1, 30, 3), torch.randn(2, 1, 30, 3)
    features = model.network_inputs(x, torch.zeros(2), boundary_state=target)
    # 2 input steps x 3 variables, then the 3 prognostic variables and the forced-point flag
    assert features.shape == (2, 30, 2 * 3 + 3 + 1)
    assert torch.equal(features[:, forced, 6:9], target[:, 0, forced])
    assert not features[:, ~forced, 6:9].any()  # no leak: the interior sees zeros
    assert torch.equal(features[:, :, 9], forced.float().expand(2, 30))
    # The interior's truth at the predicted time changes nothing; the boundary's does.
    leaked = target.clone()
    leaked[:, :, ~forced] += 10.0
    out = model.forward_normalised(x, torch.zeros(2), boundary_state=target)
    assert torch.equal(out, model.forward_normalised(x, torch.zeros(2), boundary_state=leaked))
    moved = target.clone()
    moved[:, :, forced] += 10.0
    shifted = model.forward_normalised(x, torch.zeros(2), boundary_state=moved)
    assert not torch.allclose(shifted[:, :, ~forced], out[:, :, ~forced], atol=1e-3)
    with pytest.raises(ValueError, match="target_forcing"):
        model.forward_normalised(x, torch.zeros(2))
    # Training (the batch's targets) and predict's rollout (the truth it reads) agree.
    rollout = {"rollout": {"start": 2, "maximum": 2}, "validation_rollout": 2}
    config = {"task": {"name": "forecaster", **rollout}, "lineage": {}}
    loss = build_loss({"name": "mse", "scalers": []}, {})
    task = build_task(model, config, {}, loss, torch.ones(30), 6 * 3600)
    data = torch.randn(2, 4, 1, 30, 3)
    time = torch.arange(4)[None].expand(2, 4) * 6 * 3600
    trained = task._roll_out({"data": data, "time": time}, 2)[0].detach()
    trained = model.normalizer.denormalise(trained, model.output_columns)
    predicted = model.rollout(data[:, :2], time[:, 1], 2, known_future=data[:, 2:])
    assert torch.allclose(predicted, trained, atol=1e-5)
    # A spec from before the option (no target_forcing key) builds the model without it.
    old = lam_model({"ring_width": 1})
    assert not old.target_forcing and "target_forcing" in old.spec["boundary"]
    del old.spec["boundary"]["target_forcing"]
    rebuilt = ForecastModel(tiny_graph(num_data=30, num_hidden=10), old.spec, STATISTICS)
    assert not rebuilt.target_forcing
    rebuilt.load_state_dict(old.state_dict())
