"""Training on several datasets at once (the forecaster over several grids) and the downscaler
(coarse input dataset -> fine output dataset at the same time), in Lightning.

The loss is the sum over output datasets of each dataset's loss (its own scalers on its own
grid) times its weight (data.datasets.<name>.loss_weight); each part is logged on its own.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from torchmetrics import MeanMetric

from squall.models.multi_dataset import MultiDatasetModel
from squall.training.curriculum import RolloutCurriculum
from squall.training.forecaster import Forecaster

Tensors = dict[str, torch.Tensor]


class MultiDatasetTask(Forecaster):
    """Batches hold `data` {name: (batch, time, ensemble, grid, variable)} in physical units and
    `time` (batch, time) epoch seconds, the same dates in every dataset: the k inputs, then (for
    a forecaster, lead_steps 1) the rollout targets. A downscaler (lead_steps 0) is scored at
    the last input time. Shares the forecaster's optimiser, schedule and checkpoint hooks.
    """

    def __init__(
        self,
        model: MultiDatasetModel,
        config: dict[str, Any],
        statistics: dict[str, dict[str, list[float]]],
        losses: dict[str, torch.nn.Module],
        loss_weights: dict[str, float],
        metric_weights: dict[str, torch.Tensor],
    ) -> None:
        pl.LightningModule.__init__(self)  # Forecaster's own init is for one dataset
        self.model = model
        self.config = config
        self.losses = torch.nn.ModuleDict(losses)
        self.loss_weights = dict(loss_weights)
        task = config["task"]
        self.curriculum = RolloutCurriculum(**task["rollout"])
        self.validation_rollout = task["validation_rollout"]
        self.step_hours = model.timestep_seconds // 3600
        for name, weights in metric_weights.items():
            self.register_buffer(f"{name}_metric_weights", weights / weights.sum(), False)
        self.val_mse = torch.nn.ModuleDict(
            {
                self._dataset_metric(name, variable, lead): MeanMetric()
                for name in model.output_names
                for variable in model.datasets[name].output_variables
                for lead in self._leads(self.validation_rollout)
            }
        )
        self.save_hyperparameters(
            {"config": config, "model_spec": model.spec, "statistics": statistics}, logger=False
        )

    def _leads(self, steps: int) -> list[int]:
        """Lead of each output time in model steps: 0 for a downscaler, 1..steps otherwise."""
        return [0] if self.model.lead_steps == 0 else list(range(1, steps + 1))

    def _dataset_metric(self, name: str, variable: str, lead: int) -> str:
        return f"{name}__{variable}__{lead * self.step_hours}h"  # no '/' in ModuleDict keys

    def _roll_out(self, batch: dict[str, Any], steps: int) -> tuple[Tensors, Tensors, Tensors]:
        """Normalised predictions and targets {name: (B, steps, E, G, V_out)} of the output
        datasets, feeding predicted prognostic variables back, and the masks of target points
        missing in the data."""
        model, k = self.model, self.model.input_steps
        if model.lead_steps == 0 and steps != 1:
            raise ValueError("the downscaler predicts one time per sample: use a rollout of 1")
        data = {
            name: model.datasets[name].normalizer.normalise(values)
            for name, values in batch["data"].items()
        }
        times = batch["time"].shape[1]
        if times < k + model.lead_steps * steps:
            raise ValueError(
                f"a batch holds {times} dates but {k} inputs and a rollout of {steps} need "
                f"{k + model.lead_steps * steps}: build the datamodule for the longest rollout"
            )
        state = {name: data[name][:, :k] for name in model.input_names}
        target_times = [k - 1 + model.lead_steps * (step + 1) for step in range(steps)]
        if model.lead_steps == 0:  # a downscaler: one prediction, at the last input time
            prediction = model.forward_normalised(state, batch["time"][:, k - 1])
            predictions = {name: values[:, None] for name, values in prediction.items()}
        else:  # prognostic variables fed back, the rest read from the data
            known = {name: data[name][:, target_times] for name in model.input_names}
            predictions = model.rollout_normalised(state, batch["time"][:, target_times], known)
        outputs, targets, skips = {}, {}, {}
        for name in model.output_names:
            columns = model.datasets[name].output_columns
            outputs[name] = predictions[name]
            targets[name] = data[name][:, target_times][..., columns]
            raw = batch["data"][name][:, target_times][..., columns]
            skips[name] = model.datasets[name].normalizer.nan_mask(raw)
        return outputs, targets, skips

    def dataset_losses(self, predictions: Tensors, targets: Tensors, skips: Tensors) -> Tensors:
        """Each output dataset's loss, unweighted."""
        return {
            name: self.losses[name](predictions[name], targets[name], skips[name])
            for name in self.model.output_names
        }

    def loss(self, predictions: Tensors, targets: Tensors, skips: Tensors) -> torch.Tensor:
        """The training loss: the datasets' losses times their weights, summed (called as the
        forecaster's loss module is, e.g. by the pre-flight's dry run)."""
        parts = self.dataset_losses(predictions, targets, skips)
        return sum(self.loss_weights.get(name, 1.0) * part for name, part in parts.items())

    def _loss(self, batch: dict[str, Any], steps: int, stage: str) -> tuple[torch.Tensor, tuple]:
        rolled = self._roll_out(batch, steps)
        size = batch["time"].shape[0]
        parts = self.dataset_losses(*rolled)
        for name, part in parts.items():
            self.log(f"{stage}_loss/{name}", part, batch_size=size, sync_dist=stage == "val")
        total = sum(self.loss_weights.get(name, 1.0) * part for name, part in parts.items())
        return total, rolled

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss, _ = self._loss(batch, self.rollout, "train")
        size = batch["time"].shape[0]
        self.log("train_loss", loss, prog_bar=True, batch_size=size)
        self.log("rollout", float(self.rollout), batch_size=size)
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss, (predictions, targets, skips) = self._loss(batch, self.validation_rollout, "val")
        self.log("val_loss", loss, prog_bar=True, batch_size=batch["time"].shape[0], sync_dist=True)
        for name in self.model.output_names:
            side = self.model.datasets[name]
            physical = side.normalizer.denormalise(predictions[name], side.output_columns)
            truth = side.normalizer.denormalise(targets[name], side.output_columns)
            squared = ((physical - truth).float() ** 2).masked_fill(skips[name], 0.0)
            weights = getattr(self, f"{name}_metric_weights")
            mse = torch.einsum("btegv,g->betv", squared, weights).flatten(0, 1)
            for position, lead in enumerate(self._leads(self.validation_rollout)):
                for index, variable in enumerate(side.output_variables):
                    metric = self.val_mse[self._dataset_metric(name, variable, lead)]
                    metric.update(mse[:, position, index])
        return loss

    def on_validation_epoch_end(self) -> None:
        # e.g. val/rmse/fine/t_surface/0h, in the variable's own units
        for key, metric in self.val_mse.items():
            name, variable, lead = key.split("__")
            self.log(f"val/rmse/{name}/{variable}/{lead}", metric.compute().sqrt(), sync_dist=True)
            metric.reset()
