"""The ensemble CRPS method: M members per initial condition, scored together.

Each member starts from the same initial state; the ensemble model variant (noise through the
processor's conditional layer norms) draws fresh noise per member and step, so the members
differ, and the ensemble loss (squall.training.crps) rewards a sharp and calibrated ensemble.
Validation logs, per variable and lead in physical units, the fair CRPS, the spread/skill ratio
and the RMSE of the ensemble mean.
"""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics import MeanMetric

from squall.models.interface import ForecastModel
from squall.training.crps import kernel_crps
from squall.training.forecaster import Forecaster

# what each validation metric accumulates per (variable, lead): area-weighted means
_SUMS = ("crps", "variance", "squared_error")


class EnsembleForecaster(Forecaster):
    def __init__(
        self,
        model: ForecastModel,
        config: dict[str, Any],
        statistics: dict[str, list[float]],
        loss: torch.nn.Module,
        metric_weights: torch.Tensor,
    ) -> None:
        super().__init__(model, config, statistics, loss, metric_weights)
        self.members = config["task"]["ensemble"]["members"]
        self.val_ensemble = torch.nn.ModuleDict(
            {
                f"{kind}__{key}": MeanMetric()
                for kind in _SUMS
                for key in self.val_mse  # the Forecaster's variable__lead keys
            }
        )

    def _roll_out(
        self, batch: dict[str, torch.Tensor], steps: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The Forecaster's rollout from M copies of each initial state: predictions (B, steps,
        M, G, V_out); targets and skip hold the truth M times (a view, no copy)."""
        data = batch["data"]
        if data.shape[2] != 1:
            raise ValueError(
                f"the ensemble forecaster starts its {self.members} members from one initial "
                f"state, but the dataset has {data.shape[2]} members: select one ensemble member"
            )
        members = {**batch, "data": data.expand(-1, -1, self.members, -1, -1)}
        return super()._roll_out(members, steps)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        predictions, targets, skip = self._roll_out(batch, self.validation_rollout)
        loss = self.loss(predictions, targets, skip)
        self.log("val_loss", loss, prog_bar=True, batch_size=batch["data"].shape[0], sync_dist=True)
        columns = self.model.output_columns
        physical = self.model.normalizer.denormalise(predictions, columns).float()
        truth = self.model.normalizer.denormalise(targets[:, :, :1], columns).float()
        present = ~skip[:, :, :1]
        per_point = {
            # fair CRPS; a one-member "ensemble" has the standard one (its absolute error)
            "crps": kernel_crps(physical, truth, alpha=1.0 if self.members > 1 else 0.0),
            "variance": physical.var(dim=2, keepdim=True, correction=int(self.members > 1)),
            "squared_error": (physical.mean(dim=2, keepdim=True) - truth) ** 2,
        }
        for kind, values in per_point.items():
            # (B, T, 1, G, V) -> area-weighted mean per sample, lead and variable (B, T, V)
            weighted = torch.einsum(
                "btegv,g->btv", values.masked_fill(~present, 0.0), self.metric_weights
            )
            for lead in range(self.validation_rollout):
                for index, variable in enumerate(self.model.output_variables):
                    key = f"{kind}__{self._metric_name(variable, lead + 1)}"
                    self.val_ensemble[key].update(weighted[:, lead, index])
        return loss

    def on_validation_epoch_end(self) -> None:
        # val/crps/<variable>/<lead>, val/spread_skill/..., val/rmse/... (ensemble mean)
        correction = ((self.members + 1) / self.members) ** 0.5
        for name in self.val_mse:
            variable, lead = name.split("__")
            crps, variance, squared = (
                self.val_ensemble[f"{kind}__{name}"].compute() for kind in _SUMS
            )
            rmse = squared.sqrt()
            self.log(f"val/crps/{variable}/{lead}", crps, sync_dist=True)
            self.log(f"val/rmse/{variable}/{lead}", rmse, sync_dist=True)
            self.log(
                f"val/spread_skill/{variable}/{lead}",
                correction * variance.sqrt() / rmse.clamp_min(1e-12),
                sync_dist=True,
            )
        for metric in self.val_ensemble.values():
            metric.reset()
