"""The multi-dataset task: per-dataset losses summed with their weights, shapes through the
rollout, and the downscaler scored at its input time. Batches are synthetic (random values on
the small real graph of tests/multi_dataset_graph.py)."""

from __future__ import annotations

import pytest
import torch
from multi_dataset_graph import DOWNSCALER, FORECASTER, multi_dataset_graph, spec, statistics

from squall.models.multi_dataset import MultiDatasetModel
from squall.training.losses import build_loss
from squall.training.multi_dataset import MultiDatasetTask

CONFIG = {
    "task": {"rollout": {"start": 2, "maximum": 2}, "validation_rollout": 2},
    "training": {},
}


@pytest.fixture(scope="module")
def graph():
    return multi_dataset_graph()


def _task(graph, datasets, lead_steps, weights, input_steps=1):
    stats = {name: statistics(d["variables"]) for name, d in datasets.items()}
    model = MultiDatasetModel(graph, spec(datasets, lead_steps, input_steps), stats)
    for head in model.network.output_mlps.values():  # not the zero start: losses differ
        torch.nn.init.normal_(
            [m for m in head.modules() if isinstance(m, torch.nn.Linear)][-1].weight
        )
    losses = {name: build_loss({"name": "mse", "scalers": []}, {}) for name in model.output_names}
    area = {name: graph[name].area_weight for name in model.output_names}
    return MultiDatasetTask(model, CONFIG, stats, losses, weights, area)


def _batch(times: int, batch: int = 2) -> dict:
    return {
        "data": {
            "coarse": 10 + 2 * torch.randn(batch, times, 1, 20, 2),
            "fine": 10 + 2 * torch.randn(batch, times, 1, 80, 2),
        },
        "time": 820800000 + 21600 * torch.arange(times).repeat(batch, 1),
    }


def test_forecaster_rolls_out_every_output_dataset(graph):
    task = _task(graph, FORECASTER, 1, {"coarse": 1.0, "fine": 1.0}, input_steps=2)
    predictions, targets, skips = task._roll_out(_batch(times=4), steps=2)
    assert predictions["coarse"].shape == targets["coarse"].shape == (2, 2, 1, 20, 2)
    assert predictions["fine"].shape == targets["fine"].shape == (2, 2, 1, 80, 1)  # t, not lsm
    assert not skips["fine"].any()
    with pytest.raises(ValueError, match="a batch holds 3 dates but 2 inputs and a rollout of 2"):
        task._roll_out(_batch(times=3), steps=2)


def test_downscaler_is_scored_at_its_input_time(graph):
    task = _task(graph, DOWNSCALER, 0, {"fine": 1.0})
    batch = _batch(times=1)
    batch["data"]["fine"] = batch["data"]["fine"][..., :1]
    predictions, targets, _ = task._roll_out(batch, steps=1)
    assert set(predictions) == {"fine"} and predictions["fine"].shape == (2, 1, 1, 80, 1)
    side = task.model.datasets["fine"]
    torch.testing.assert_close(targets["fine"], side.normalizer.normalise(batch["data"]["fine"]))


def test_loss_is_the_weighted_sum_of_the_datasets_losses(graph):
    task = _task(graph, FORECASTER, 1, {"coarse": 0.25, "fine": 2.0})
    batch = _batch(times=3)
    torch.manual_seed(0)
    total, (predictions, targets, skips) = task._loss(batch, 2, "train")
    parts = {
        name: task.losses[name](predictions[name], targets[name], skips[name])
        for name in ("coarse", "fine")
    }
    torch.testing.assert_close(total, 0.25 * parts["coarse"] + 2.0 * parts["fine"])
    torch.testing.assert_close(task.loss(predictions, targets, skips), total)
    assert parts["coarse"] > 0 and parts["fine"] > 0


def test_a_dataset_weighted_zero_trains_nothing_of_its_own(graph):
    task = _task(graph, FORECASTER, 1, {"coarse": 0.0, "fine": 1.0})
    total, _ = task._loss(_batch(times=3), 1, "train")
    total.backward()
    network = task.model.network
    assert all(
        p.grad is None or not p.grad.any() for p in network.output_mlps["coarse"].parameters()
    )
    assert any(
        p.grad is not None and p.grad.any() for p in network.output_mlps["fine"].parameters()
    )


def test_inference_rollout_is_the_training_rollout(graph):
    """MultiDatasetModel.rollout (physical, as predict-multi-dataset calls it) gives the
    training rollout's predictions; it needs the data of later steps only for inputs the model
    does not predict (here the fine dataset's forcing lsm)."""
    task = _task(graph, FORECASTER, 1, {"coarse": 1.0, "fine": 1.0}, input_steps=2)
    model, batch = task.model, _batch(times=4)
    predictions, _, _ = task._roll_out(batch, steps=2)
    assert model.needs_known_inputs
    with pytest.raises(ValueError, match="pass their values at each step"):
        model.rollout({n: v[:, :2] for n, v in batch["data"].items()}, batch["time"][:, 1], 2)
    known = {name: values[:, 2:] for name, values in batch["data"].items()}
    inputs = {name: values[:, :2] for name, values in batch["data"].items()}
    physical = model.rollout(inputs, batch["time"][:, 1], 2, known)
    for name, side in model.datasets.items():
        expected = side.normalizer.denormalise(predictions[name], side.output_columns)
        torch.testing.assert_close(physical[name], expected.detach(), rtol=1e-5, atol=1e-4)
