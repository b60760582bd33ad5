"""The forecaster task in Lightning: k input states, an autoregressive rollout of r steps."""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch

from squall.models.interface import ForecastModel


class Forecaster(pl.LightningModule):
    """Trains a ForecastModel on batches from ForecastDataModule.

    Hyperparameters are plain containers (no OmegaConf objects) so checkpoints load with
    torch.load(weights_only=True).
    """

    def __init__(
        self,
        model: ForecastModel,
        config: dict[str, Any],
        statistics: dict[str, list[float]],
        loss: torch.nn.Module,
    ) -> None:
        super().__init__()
        self.model = model
        self.config = config
        self.rollout = config["task"]["rollout"]
        self.loss = loss
        # Everything needed to rebuild the model from the checkpoint and its graph file.
        self.save_hyperparameters(
            {"config": config, "model_spec": model.spec, "statistics": statistics}
        )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        run_id = getattr(self.logger, "run_id", None)
        checkpoint["squall"] = {"mlflow_run_id": run_id, "lineage": self.config["lineage"]}

    def _rollout_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Roll out `rollout` steps, feeding predictions back; one loss over all output times."""
        data = self.model.normalizer.normalise(batch["data"])  # (B, T, E, G, V)
        time = batch["time"]
        k = self.model.input_steps
        state = data[:, :k]
        predictions = []
        for step in range(self.rollout):
            truth = data[:, k + step]
            prediction = self.model.forward_normalised(state, time[:, k + step])
            predictions.append(prediction)
            new_state = self.model.next_input_state(prediction, truth)
            state = torch.cat([state[:, 1:], new_state[:, None]], dim=1)
        targets = data[:, k : k + self.rollout][..., self.model.output_columns]
        return self.loss(torch.stack(predictions, dim=1), targets)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self._rollout_loss(batch)
        self.log("train_loss", loss, prog_bar=True, batch_size=batch["data"].shape[0])
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self._rollout_loss(batch)
        self.log("val_loss", loss, prog_bar=True, batch_size=batch["data"].shape[0])
        return loss

    def configure_optimizers(self) -> dict[str, Any]:
        training = self.config["training"]
        settings = training["optimizer"]
        optimizer = torch.optim.AdamW(
            self.parameters(),
            lr=settings["lr"],
            weight_decay=settings["weight_decay"],
            betas=tuple(settings["betas"]),
        )
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = min(training["lr_schedule"]["warmup_steps"], total - 1)
        floor = training["lr_schedule"]["min_lr"] / settings["lr"]

        def factor(step: int) -> float:
            # Linear warm-up, then cosine decay to min_lr at the last step.
            if step < warmup:
                return (step + 1) / (warmup + 1)
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
