"""training.cuda_graph on the real Forecaster (GPU only): the tiny forecaster of the sharding
cases trained by Lightning with its step replayed from a CUDA graph, against the same training
run eagerly: same losses step by step, same weights at the end."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from sharding_cases import (
    AREA,
    INPUT_STEPS,
    ROLLOUT,
    STATISTICS,
    VARIABLES,
    build_model,
    output_scalers,
    task_config,
)

from squall.training.forecaster import Forecaster
from squall.training.losses import build_loss

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


class _Recording(Forecaster):
    """The Forecaster, keeping each training step's loss."""

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        self.recorded.append(loss.detach().float().clone())
        return loss


def _samples(count: int = 10) -> list[dict[str, torch.Tensor]]:
    """Different states and valid times per sample: the computed forcings change too."""
    generator = torch.Generator().manual_seed(3)
    mean, stdev = torch.tensor(STATISTICS["mean"]), torch.tensor(STATISTICS["stdev"])
    steps = INPUT_STEPS + ROLLOUT
    return [
        {
            "data": mean + stdev * torch.randn(steps, 1, 37, len(VARIABLES), generator=generator),
            "time": 820_000_000 + 21600 * torch.arange(steps) + 3600 * index,
        }
        for index in range(count)
    ]


def _train(graphed: bool, deterministic: bool) -> _Recording:
    config = task_config()
    config["training"] = {
        "optimizer": {"name": "adamw", "lr": 1e-3},
        "lr_schedule": {"warmup_steps": 2, "min_lr": 1e-5},
        "gradient_clip_val": 0.5,
        "cuda_graph": graphed,
    }
    model = build_model({"processor": "gnn", "mapper": "gnn", "num_chunks": 2})
    loss = build_loss({"name": "mse", "scalers": ["area", "variable_weights"]}, output_scalers())
    task = _Recording(model, config, STATISTICS, loss, AREA)
    task.recorded = []
    trainer = pl.Trainer(
        accelerator="gpu",
        devices=1,
        precision="bf16-mixed",
        max_epochs=3,
        gradient_clip_val=None if graphed else 0.5,
        deterministic="warn" if deterministic else False,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    # batches of 4, 4, 2: two graphs taking turns; validation between
    # epochs, as in a real run
    validation = torch.utils.data.DataLoader(_samples(4), batch_size=2)
    trainer.fit(task, torch.utils.data.DataLoader(_samples(), batch_size=4), validation)
    assert trainer.global_step == 9
    return task


@pytest.mark.parametrize("deterministic", [False, True])
def test_graphed_forecaster_trains_as_the_eager_one(deterministic):
    eager, graphed = _train(False, deterministic), _train(True, deterministic)
    assert len(graphed.graphed_step.graphs) == 2  # batches of 4 and of 2
    torch.testing.assert_close(
        torch.stack(graphed.recorded), torch.stack(eager.recorded), rtol=2e-3, atol=1e-5
    )
    for (name, a), b in zip(graphed.named_parameters(), eager.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=2e-3, atol=1e-4, msg=name)
