"""training.cuda_graph's optimiser update, on the CPU: the fused AdamW steps as the default
(foreach) one, survives checkpoints of either kind, and squall's own gradient clipping trains
the real Forecaster as Lightning's clipping does (the replay itself needs a GPU:
tests/distributed/test_cuda_graph_forecaster.py)."""

from __future__ import annotations

import copy
import math

import pytest
import pytorch_lightning as pl
import torch
from tiny_graph import TINY_STATISTICS, tiny_forecast_model

from squall.training.ademamix import AdEMAMix
from squall.training.cuda_graph import clip_gradient_norm
from squall.training.forecaster import Forecaster
from squall.training.losses import build_loss
from squall.training.optimizers import build_optimizer

ADAMW = {"name": "adamw", "lr": 1e-2, "betas": (0.9, 0.95), "weight_decay": 0.1}


def _network() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))


def _train(network: torch.nn.Module, optimizer: torch.optim.Optimizer, steps: int) -> None:
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x, y = torch.randn(32, 6, generator=generator), torch.randn(32, 3, generator=generator)
        optimizer.zero_grad(set_to_none=True)
        (network(x) - y).square().mean().backward()
        optimizer.step()


def _max_difference(a: torch.nn.Module, b: torch.nn.Module) -> float:
    pairs = zip(a.parameters(), b.parameters(), strict=True)
    return max((p - q).abs().max().item() for p, q in pairs)


def test_build_optimizer_makes_adamw_fused_on_request_and_leaves_the_default_otherwise():
    default = build_optimizer(_network().parameters(), ADAMW)
    fused = build_optimizer(_network().parameters(), ADAMW, fused=True)
    assert isinstance(fused, torch.optim.AdamW) and fused.param_groups[0]["fused"] is True
    # None, not False: torch then picks its foreach kernels on a GPU, as before
    assert default.param_groups[0]["fused"] is None and default.param_groups[0]["foreach"] is None
    ademamix = build_optimizer(_network().parameters(), {"name": "ademamix", "lr": 1e-3}, 1, True)
    assert isinstance(ademamix, AdEMAMix)  # no fused version: the flag is ignored


def test_fused_adamw_steps_as_the_default_adamw():
    fused_network, default_network = _network(), _network()
    _train(fused_network, build_optimizer(fused_network.parameters(), ADAMW, fused=True), 25)
    _train(default_network, build_optimizer(default_network.parameters(), ADAMW), 25)
    assert _max_difference(fused_network, _network()) > 1e-2  # it trained
    assert _max_difference(fused_network, default_network) < 1e-6


@pytest.mark.parametrize("saved_fused", [True, False])
def test_a_checkpoint_of_either_kind_resumes_in_this_runs_kind(saved_fused):
    """A run resumed with training.cuda_graph switched keeps its own implementation (Lightning
    refuses to clip a fused one) and continues exactly."""
    uninterrupted = _network()
    saver = build_optimizer(uninterrupted.parameters(), ADAMW, fused=saved_fused)
    _train(uninterrupted, saver, 10)
    network, checkpoint = copy.deepcopy(uninterrupted), copy.deepcopy(saver.state_dict())
    _train(uninterrupted, saver, 10)
    resumed = build_optimizer(network.parameters(), ADAMW, fused=not saved_fused)
    resumed.load_state_dict(checkpoint)
    assert resumed.param_groups[0]["fused"] is (None if saved_fused else True)
    _train(network, resumed, 10)
    assert _max_difference(network, _network()) > 1e-2
    assert _max_difference(network, uninterrupted) < 1e-6


def _gradients(*shapes: tuple[int, ...]) -> list[torch.nn.Parameter]:
    generator = torch.Generator().manual_seed(2)
    parameters = [torch.nn.Parameter(torch.zeros(shape)) for shape in shapes]
    for parameter in parameters:
        parameter.grad = torch.randn(parameter.shape, generator=generator)
    return parameters


def test_clip_gradient_norm_scales_the_global_norm_down_to_the_limit_over_all_groups():
    parameters = _gradients((4, 3), (5,), (2, 2))
    before = [parameter.grad.clone() for parameter in parameters]
    norm = math.sqrt(sum(float(g.square().sum()) for g in before))
    groups = [{"params": parameters[:2]}, {"params": parameters[2:], "lr": 1e-4}]
    optimizer = build_optimizer(groups[0]["params"], ADAMW, fused=True)
    optimizer.add_param_group(groups[1])
    total = clip_gradient_norm(optimizer, norm / 4)
    assert isinstance(total, torch.Tensor) and float(total) == pytest.approx(norm, rel=1e-6)
    for parameter, gradient in zip(parameters, before, strict=True):  # one factor for all
        torch.testing.assert_close(parameter.grad, gradient / 4, rtol=1e-5, atol=1e-7)
    unclipped = _gradients((4, 3), (5,), (2, 2))
    clip_gradient_norm(build_optimizer(unclipped, ADAMW), 2 * norm)  # under the limit: as is
    for parameter, gradient in zip(unclipped, before, strict=True):
        torch.testing.assert_close(parameter.grad, gradient, rtol=0, atol=0)


class _StepOnTheCpu(Forecaster):
    """The Forecaster with training.cuda_graph, its forward and backward run eagerly (a replay
    needs CUDA), then the graphed step's own update: squall's clipping, the fused AdamW (from
    configure_optimizers) and the schedule, under Lightning's manual optimisation."""

    def on_fit_start(self) -> None:  # the check that refuses a CPU run of training.cuda_graph
        pass

    def training_step(self, batch, batch_idx):
        for parameter in self.parameters():
            parameter.grad = None  # a replay writes the gradients afresh
        loss = self.loss(*self._roll_out(batch, self.rollout))
        loss.backward()
        self.graphed_step.step_optimizer(self)
        return loss.detach()


def _forecaster(graphed: bool, clip: float | None) -> Forecaster:
    torch.manual_seed(0)
    model = tiny_forecast_model()
    for parameter in model.parameters():  # no zero-initialised parts: every gradient counts
        torch.nn.init.normal_(parameter, std=0.3)
    config = {
        "task": {"rollout": {"start": 1, "maximum": 1}, "validation_rollout": 1},
        "system": {"hardware": {}},
        "training": {
            "optimizer": ADAMW,
            "lr_schedule": {"warmup_steps": 2, "min_lr": 1e-4},
            "gradient_clip_val": clip,
            "cuda_graph": graphed,
        },
        "lineage": {},
    }
    loss = build_loss({"name": "mse", "scalers": []}, {})
    task_class = _StepOnTheCpu if graphed else Forecaster
    return task_class(model, config, TINY_STATISTICS, loss, torch.ones(30))


def _fit(task: Forecaster, clip: float | None) -> list[float]:
    generator = torch.Generator().manual_seed(3)
    samples = [
        {"data": torch.randn(2, 1, 30, 2, generator=generator), "time": 21600 * torch.arange(2)}
        for _ in range(6)
    ]
    losses = []

    def record(trainer, module, outputs, *_) -> None:  # automatic optimisation: {"loss": loss}
        losses.append(float(outputs["loss"] if isinstance(outputs, dict) else outputs))

    callback = pl.callbacks.LambdaCallback(on_train_batch_end=record)
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=2,
        gradient_clip_val=None if task.graphed_step is not None else clip,
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(task, torch.utils.data.DataLoader(samples, batch_size=2))
    assert trainer.global_step == 6  # Lightning counts the manual steps too
    fused = trainer.optimizers[0].param_groups[0]["fused"]
    assert fused is (True if task.graphed_step is not None else None)
    return losses


def test_the_graphed_update_trains_the_forecaster_as_lightnings_clipping_does():
    clip = 0.05  # well under the gradients' norm: every step is clipped
    eager, graphed = _forecaster(False, clip), _forecaster(True, clip)
    eager_losses, graphed_losses = _fit(eager, clip), _fit(graphed, clip)
    assert graphed_losses == pytest.approx(eager_losses, rel=1e-5)
    assert _max_difference(graphed, eager) < 1e-5
    unclipped = _forecaster(True, None)
    _fit(unclipped, None)
    assert _max_difference(unclipped, graphed) > 1e-3  # so the clipping did something
