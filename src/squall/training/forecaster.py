"""The forecaster task in Lightning: k input states, an autoregressive rollout of r steps."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torchmetrics import MeanMetric

from squall.models.interface import ForecastModel
from squall.training.cuda_graph import GraphedTrainingStep, check_cuda_graph_run
from squall.training.curriculum import RolloutCurriculum
from squall.training.optimizers import build_optimizer, warmup_cosine


class Forecaster(pl.LightningModule):
    """Trains a ForecastModel on batches from ForecastDataModule.

    Batches hold `data` (batch, time, ensemble, grid, variable) in physical units, with the k
    inputs followed by at least as many targets as the longest rollout, and `time` (epoch s).
    Hyperparameters are plain containers (no OmegaConf objects) so checkpoints load with
    torch.load(weights_only=True).
    """

    # training.cuda_graph (set in __init__); None: Lightning's automatic optimisation
    graphed_step: GraphedTrainingStep | None = None

    def __init__(
        self,
        model: ForecastModel,
        config: dict[str, Any],
        statistics: dict[str, list[float]],
        loss: torch.nn.Module,
        metric_weights: torch.Tensor,
    ) -> None:
        super().__init__()
        self.model = model
        self.config = config
        self.loss = loss
        task = config["task"]
        self.curriculum = RolloutCurriculum(**task["rollout"])
        self.validation_rollout = task["validation_rollout"]
        self.step_hours = model.timestep_seconds // 3600
        # Area weights of the validation metrics (physical units, per variable and lead).
        self.register_buffer("metric_weights", metric_weights / metric_weights.sum(), False)
        # training.cuda_graph: forward and backward replayed from a CUDA graph, the optimiser
        # stepped by hand (manual optimisation), see training.cuda_graph
        self.graphed_step = (
            GraphedTrainingStep(lambda batch, steps: self.loss(*self._roll_out(batch, steps)))
            if config.get("training", {}).get("cuda_graph", False)
            else None
        )
        self.automatic_optimization = self.graphed_step is None
        self.val_mse = torch.nn.ModuleDict(
            {
                self._metric_name(variable, lead): MeanMetric()
                for variable in model.output_variables
                for lead in range(1, self.validation_rollout + 1)
            }
        )
        # Everything needed to rebuild the model from the checkpoint and its graph file.
        # (logged to MLflow by the trainer, flattened, not by Lightning)
        self.save_hyperparameters(
            {"config": config, "model_spec": model.spec, "statistics": statistics}, logger=False
        )

    def _metric_name(self, variable: str, lead: int) -> str:
        return f"{variable}__{lead * self.step_hours}h"  # ModuleDict keys may not hold '/'

    @property
    def rollout(self) -> int:
        return self.curriculum.at(self.current_epoch, self.global_step)

    def _roll_out(
        self, batch: dict[str, torch.Tensor], steps: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalised predictions and targets (B, steps, E, G, V_out), feeding predictions back,
        and the mask of target points missing in the data."""
        data = self.model.normalizer.normalise(batch["data"])  # (B, T, E, G, V)
        k = self.model.input_steps
        if data.shape[1] < k + steps:
            raise ValueError(
                f"a batch holds {data.shape[1] - k} target steps but the rollout needs {steps}: "
                "the datamodule must be built for the longest rollout"
            )
        state = data[:, :k]
        noise = self._member_noise(batch, steps)
        predictions = []
        for step in range(steps):
            truth = data[:, k + step]
            options = {} if noise is None else {"noise": noise[step]}  # the ensemble's only
            if self.model.target_forcing:  # a limited-area model's boundary at the target time
                options["boundary_state"] = truth
            prediction = self.model.forward_normalised(state, batch["time"][:, k + step], **options)
            # A limited-area model's boundary is the true state (no gradient flows there).
            prediction = self.model.apply_boundary(prediction, truth)
            predictions.append(prediction)
            new_state = self.model.next_input_state(prediction, truth)
            state = torch.cat([state[:, 1:], new_state[:, None]], dim=1)
        targets = data[:, k : k + steps][..., self.model.output_columns]
        # Points missing in the data (NaN before the imputers filled them) add no loss.
        skip = self.model.normalizer.nan_mask(
            batch["data"][:, k : k + steps][..., self.model.output_columns]
        )
        return torch.stack(predictions, dim=1), targets, skip

    @property
    def seed(self) -> int:
        """training.seed: with the step and a sample's first time, it seeds that sample's noise."""
        return self.config.get("training", {}).get("seed", 0)

    def sample_seeds(self, batch: dict[str, torch.Tensor], count: int) -> list[list[int]]:
        """`count` independent seeds per sample of `batch` from training.seed, the training step
        (0 in validation: the same noise every epoch) and the sample's first time, so a sample's
        noise does not depend on which rank draws it or how members and grid are split."""
        counter = self.global_step + 1 if self.training else 0
        seeds = []
        for first_time in batch["time"][:, 0].tolist():  # one host sync per call
            entropy = [value % 2**64 for value in (self.seed, counter, first_time)]
            words = np.random.SeedSequence(entropy).generate_state(count, np.uint64)
            seeds.append([int(word) for word in words])
        return seeds

    def _member_noise(self, batch: dict[str, torch.Tensor], steps: int) -> torch.Tensor | None:
        """The ensemble noise of each rollout step (steps, B x E, channels); None: the model
        draws its own, if it has any (the ensemble forecaster seeds it)."""
        return None

    def on_fit_start(self) -> None:
        check_cuda_graph_run(self.graphed_step is not None, self.device, self.trainer.world_size)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        if self.graphed_step is None:
            loss = self.loss(*self._roll_out(batch, self.rollout))
        else:
            loss = self.graphed_step(self, batch, self.rollout)
        size = batch["data"].shape[0]
        self.log("train_loss", loss, prog_bar=True, batch_size=size)
        self.log("rollout", float(self.rollout), batch_size=size)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        predictions, targets, skip = self._roll_out(batch, self.validation_rollout)
        loss = self.loss(predictions, targets, skip)
        self.log("val_loss", loss, prog_bar=True, batch_size=batch["data"].shape[0], sync_dist=True)
        columns = self.model.output_columns
        physical = self.model.normalizer.denormalise(predictions, columns)
        truth = self.model.normalizer.denormalise(targets, columns)
        # Area-weighted MSE per sample, lead and variable: (B, T, E, G, V) -> (B*E, T, V)
        squared = ((physical - truth).float() ** 2).masked_fill(skip, 0.0)
        sharding = self.model.network.grid_sharding  # model sharding: this rank's grid shard
        weights = self.metric_weights[self.model.network.grid_points]
        mse = torch.einsum("btegv,g->betv", squared, weights)
        if sharding is not None:
            mse = sharding.sum(mse)
        mse = mse.flatten(0, 1)
        for lead in range(self.validation_rollout):
            for index, variable in enumerate(self.model.output_variables):
                self.val_mse[self._metric_name(variable, lead + 1)].update(mse[:, lead, index])
        return loss

    def on_validation_epoch_end(self) -> None:
        # Logged with stable names, e.g. val/rmse/msl/6h, in the variables' own units.
        for name, metric in self.val_mse.items():
            variable, lead = name.split("__")
            # compute() already gathers over data-parallel ranks; all ranks log the same value
            self.log(f"val/rmse/{variable}/{lead}", metric.compute().sqrt(), sync_dist=True)
            metric.reset()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        run_id = getattr(self.logger, "run_id", None)
        checkpoint["squall"] = {
            "mlflow_run_id": run_id,
            "lineage": self.config["lineage"],
            "rollout": self.rollout,
        }

    def configure_optimizers(self) -> dict[str, Any]:
        training = self.config["training"]
        # Data-parallel replicas: the ranks of a model group (num_gpus_per_model), or of an
        # ensemble group (num_gpus_per_ensemble, a multiple of it), share one replica.
        hardware = self.config["system"]["hardware"]
        ranks_per_replica = max(
            hardware.get("num_gpus_per_model", 1), hardware.get("num_gpus_per_ensemble", 1)
        )
        replicas = (self.trainer.world_size if self.trainer else 1) // ranks_per_replica
        # the graphed step clips by itself, so its adamw can be the fused one (Lightning's
        # clipping refuses fused optimisers)
        fused = self.graphed_step is not None
        optimizer = build_optimizer(self.parameters(), training["optimizer"], replicas, fused)
        floor = training["lr_schedule"]["min_lr"] / training["optimizer"]["lr"]
        factor = warmup_cosine(
            lambda: self.trainer.estimated_stepping_batches,
            training["lr_schedule"]["warmup_steps"],
            floor,
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
