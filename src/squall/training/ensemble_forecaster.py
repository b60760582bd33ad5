"""The ensemble CRPS method: M members per initial condition, scored together.

Each member starts from the same initial state; the ensemble model variant (noise through the
processor's conditional layer norms) gets fresh noise per member and step, so the members
differ, and the ensemble loss (squall.training.crps) rewards a sharp and calibrated ensemble.
Validation logs, per variable and lead in physical units, the fair CRPS, the spread/skill ratio
and the RMSE of the ensemble mean.

Ensemble groups (system.hardware.num_gpus_per_ensemble): the ranks of a group read the same
samples and each rolls out only its part of the members; the parts are gathered (with autograd)
before the loss and the metrics. A member's noise is seeded by the training seed, the step, the
sample's first time and the member's global index, so it does not depend on how the members are
spread, and a spread run computes the loss and gradients of a run on one rank.
"""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics import MeanMetric

from squall.distributed.groups import MemberGroups
from squall.models.interface import ForecastModel
from squall.training.crps import gather_members, kernel_crps
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
        # This rank's members (global indices) and the ranks holding the others (spread_members)
        self.local_members = range(self.members)
        self.member_group = None
        self.val_ensemble = torch.nn.ModuleDict(
            {
                f"{kind}__{key}": MeanMetric()
                for kind in _SUMS
                for key in self.val_mse  # the Forecaster's variable__lead keys
            }
        )

    def spread_members(self, groups: MemberGroups) -> None:
        """Roll out only this rank's part of the members; `groups.group` holds the others."""
        self.local_members = groups.members(self.members)
        self.member_group = groups.group

    def _roll_out(
        self, batch: dict[str, torch.Tensor], steps: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The Forecaster's rollout from copies of each initial state, one per member of this
        rank: predictions (B, steps, M, G, V_out) of all M members (gathered from the ensemble
        group); targets and skip hold the truth once per local member (a view, no copy)."""
        data = batch["data"]
        if data.shape[2] != 1:
            raise ValueError(
                f"the ensemble forecaster starts its {self.members} members from one initial "
                f"state, but the dataset has {data.shape[2]} members: select one ensemble member"
            )
        members = {**batch, "data": data.expand(-1, -1, len(self.local_members), -1, -1)}
        predictions, targets, skip = super()._roll_out(members, steps)
        if self.member_group is not None:
            predictions = gather_members(predictions, self.member_group)
        return predictions, targets, skip

    def _member_noise(self, batch: dict[str, torch.Tensor], steps: int) -> torch.Tensor:
        """(steps, B x local members, channels): each sample draws the noise of all its members
        from a generator seeded by (seed, training step, first time of the sample) and keeps
        its own members' rows. Validation uses the same noise every epoch."""
        channels = self.model.network.spec["noise_channels"]
        mine = slice(self.local_members.start, self.local_members.stop)
        noise = []
        for (seed,) in self.sample_seeds(batch, 1):
            generator = torch.Generator().manual_seed(seed)
            draw = torch.randn(steps, self.members, channels, generator=generator)
            noise.append(draw[:, mine])
        data = batch["data"]
        return torch.stack(noise, dim=1).flatten(1, 2).to(data.device, data.dtype)

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
        sharding = self.model.network.grid_sharding  # model sharding: this rank's grid shard
        weights = self.metric_weights[self.model.network.grid_points]
        for kind, values in per_point.items():
            # (B, T, 1, G, V) -> area-weighted mean per sample, lead and variable (B, T, V)
            weighted = torch.einsum("btegv,g->btv", values.masked_fill(~present, 0.0), weights)
            if sharding is not None:
                weighted = sharding.sum(weighted)
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
