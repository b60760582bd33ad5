"""training.cuda_graph: the refusals (everywhere) and, on a GPU, a Lightning training whose
forward and backward are replayed from a CUDA graph against the same training run eagerly."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from test_network import make_graph

from squall.config.schema import TrainingConfig
from squall.models.encoder_processor_decoder import EncoderProcessorDecoder
from squall.training.cuda_graph import GraphedTrainingStep, check_cuda_graph_run


def test_cuda_graph_refuses_a_cpu_run_and_several_processes():
    check_cuda_graph_run(False, torch.device("cpu"), 4)  # off: nothing to check
    with pytest.raises(ValueError, match="accelerator=gpu"):
        check_cuda_graph_run(True, torch.device("cpu"), 1)
    with pytest.raises(ValueError, match="one GPU"):
        check_cuda_graph_run(True, torch.device("cuda", 0), 2)
    assert TrainingConfig(cuda_graph=True).cuda_graph


def test_cuda_graph_config_refusals(storm_inputs, tmp_path):
    from storm_sample import REPO, pipeline_overrides

    from squall.training.preflight import validate_to_file

    def validate(*extra):
        overrides = [*pipeline_overrides(storm_inputs, tmp_path), "training.cuda_graph=true"]
        path = tmp_path / "resolved.yaml"
        validate_to_file("debug", [*overrides, *extra], REPO / "configs/training", path)

    validate()  # the forecaster on one device: accepted
    with pytest.raises(ValueError, match="accumulate_grad_batches=1"):
        validate("training.accumulate_grad_batches=2")
    with pytest.raises(ValueError, match="devices=1"):
        validate("system.hardware.devices=2")
    with pytest.raises(ValueError, match="ensemble_forecaster"):
        validate("task.name=ensemble_forecaster", "training.loss=crps", "model.noise_channels=4")
    # bf16 and fp32 need no loss scaling; the graphed step's fused AdamW is adamw's alone
    validate("system.hardware.precision=bf16-mixed")
    validate("system.hardware.precision=32-true", "training.optimizer.name=ademamix")
    with pytest.raises(ValueError, match="precision=bf16-mixed"):
        validate("system.hardware.precision=16-mixed")
    with pytest.raises(ValueError, match="optimizer.name=adamw"):
        validate("training.optimizer.name=zero_adamw")


class _TinyForecast(pl.LightningModule):
    """A GNN with gradient checkpointing trained on fixed random pairs, the step eager or
    replayed from a CUDA graph (as the Forecaster does)."""

    def __init__(self, graphed: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.network = EncoderProcessorDecoder(
            make_graph(num_data=60, num_hidden=20),
            in_channels=5,
            out_channels=3,
            hidden_channels=32,
            processor_layers=2,
            gradient_checkpointing=True,
        )
        self.config = {"training": {"gradient_clip_val": 0.05}}
        step = GraphedTrainingStep(lambda batch, _: self.loss(batch))
        self.graphed_step = step if graphed else None
        self.automatic_optimization = not graphed
        self.losses: list[float] = []

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return (self.network(batch["x"]).float() - batch["y"]).square().mean()

    def training_step(self, batch, batch_idx):
        if self.graphed_step is None:
            loss = self.loss(batch)
        else:
            loss = self.graphed_step(self, batch, 1)
        self.losses.append(loss.detach().clone())
        return loss

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=1e-3)
        decay = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 / (1 + step))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": decay, "interval": "step"}}


def _train(graphed: bool) -> _TinyForecast:
    generator = torch.Generator().manual_seed(1)
    samples = [
        {"x": torch.randn(60, 5, generator=generator), "y": torch.randn(60, 3, generator=generator)}
        for _ in range(10)
    ]
    loader = torch.utils.data.DataLoader(samples, batch_size=4)  # 4, 4, 2: two graphs
    task = _TinyForecast(graphed)
    trainer = pl.Trainer(
        accelerator="gpu",
        devices=1,
        precision="bf16-mixed",
        max_epochs=2,
        gradient_clip_val=None if graphed else 0.05,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(task, loader)
    assert trainer.global_step == 6
    return task


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_graphed_training_matches_eager_training():
    eager, graphed = _train(graphed=False), _train(graphed=True)
    assert len(graphed.graphed_step.graphs) == 2  # batches of 4 and of 2
    torch.testing.assert_close(
        torch.stack(graphed.losses), torch.stack(eager.losses), rtol=1e-3, atol=1e-5
    )
    for (name, a), b in zip(graphed.named_parameters(), eager.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5, msg=name)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_step_that_syncs_with_the_host_is_refused_with_advice():
    from squall.training.cuda_graph import CapturedStep

    weight = torch.nn.Parameter(torch.ones(3, device="cuda"))

    def step(x):
        loss = (weight * x).sum()
        if loss.item() > 0:  # a host synchronisation: cannot be recorded
            loss = loss * 2
        loss.backward()
        return loss.detach()

    with pytest.raises(RuntimeError, match="training.cuda_graph=false"):
        CapturedStep(step, [weight], [torch.ones(3, device="cuda")], warmup=1)
