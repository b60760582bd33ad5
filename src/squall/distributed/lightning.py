"""Model sharding and ensemble groups in a Lightning run: group the ranks once
torch.distributed is up, then give the model, the loss and the data loaders this rank's grid
shard and members.

Gradients: each rank's loss is the whole grid's (the shards' partial sums, all-reduced with
autograd), so the backward of that all-reduce and of the exchanges hands every rank of a group
its part of num_gpus_per_model x the replica's gradient; DDP's mean over all ranks then gives
the mean over replicas of the unsharded gradient. Members spread over an ensemble group work
alike: every rank scores the gathered ensemble, the gather's backward sums the ranks' gradients
of its members, and DDP's mean undoes the factor. Nothing is rescaled by hand.
"""

from __future__ import annotations

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities import rank_zero_info

from squall.distributed.grid_sharding import GridSharding
from squall.distributed.groups import MemberGroups, ModelGroups, member_groups, model_groups
from squall.training.crps import EnsembleLoss
from squall.training.diffusion_forecaster import DiffusionForecaster
from squall.training.ensemble_forecaster import EnsembleForecaster
from squall.training.forecaster import Forecaster
from squall.training.losses import CombinedLoss, WeightedLoss


def shard_task(task: pl.LightningModule, groups: ModelGroups) -> GridSharding:
    """Install this rank's grid shard into a training task (the deterministic forecaster, a
    limited-area one included, or the ensemble or diffusion forecaster): its model's network
    runs on the shard, and its loss is the shard's part of the whole grid's. A limited-area
    model's forced points are overwritten on each shard's slice of the grid (ForecastModel.
    apply_boundary); its loss weighs the domain through a grid scaler, sharded like the others."""
    weighted = isinstance(task.loss, (WeightedLoss, CombinedLoss))
    shardable = (type(task) in (Forecaster, DiffusionForecaster) and weighted) or (
        type(task) is EnsembleForecaster
        and isinstance(task.loss, EnsembleLoss)
        and task.loss.kind != "energy"
    )
    if not shardable:
        loss = getattr(task.loss, "kind", type(task.loss).__name__)
        raise ValueError(
            "model sharding (num_gpus_per_model > 1) is implemented for the deterministic and "
            "diffusion forecasters with the weighted losses and the ensemble forecaster with a "
            f"kernel CRPS, not for {type(task).__name__} with {loss} (the energy score needs "
            "whole fields); use num_gpus_per_model: 1 for this method"
        )
    model = task.model
    balance = task.config["system"]["hardware"].get("shard_balance", "points")
    sharding = GridSharding(model.network, groups, balance)
    model.network.grid_sharding = sharding
    for module in task.loss.modules():
        if isinstance(module, (WeightedLoss, EnsembleLoss)):
            module.grid_shard = sharding
    return sharding


def spread_members(task: pl.LightningModule, groups: MemberGroups) -> None:
    """Let the ensemble group's ranks share the members of each initial condition."""
    if not isinstance(task, EnsembleForecaster):
        raise ValueError(
            "system.hardware.num_gpus_per_ensemble > 1 spreads the members of an ensemble "
            f"forecaster over ranks, but this run trains a {type(task).__name__}; use "
            "num_gpus_per_ensemble: 1 (or task.name: ensemble_forecaster)"
        )
    task.spread_members(groups)


class RankGroups(Callback):
    """Groups the ranks into model groups of `num_gpus_per_model` and ensemble groups of
    `num_gpus_per_ensemble` at setup (launched by Lightning, torchrun or srun alike: the world
    is known by then), shards the run and spreads its members."""

    def __init__(self, num_gpus_per_model: int, num_gpus_per_ensemble: int = 1) -> None:
        self.num_gpus_per_model = num_gpus_per_model
        self.num_gpus_per_ensemble = num_gpus_per_ensemble
        self.groups: ModelGroups | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.groups is not None:  # fit after validate: the groups already exist
            return
        world, rank = trainer.world_size, trainer.global_rank
        self.groups = model_groups(self.num_gpus_per_model, world, rank)
        members = member_groups(self.num_gpus_per_ensemble, self.num_gpus_per_model, world, rank)
        datamodule = trainer.datamodule
        if self.groups.shards > 1:
            sharding = shard_task(pl_module, self.groups)
            datamodule.read_grid_shard(sharding.data_points)  # the points the model shards
            rank_zero_info(
                f"Model sharding: {self.groups.replicas} model replica(s) x "
                f"{self.groups.shards} grid shards (num_gpus_per_model)"
            )
        if members.parts > 1:
            spread_members(pl_module, members)
            rank_zero_info(
                f"Ensemble groups: {members.replicas} data-parallel replica(s) x "
                f"{members.parts} member parts (num_gpus_per_ensemble)"
            )
        # the data-parallel replicas are the ensemble groups (the model groups without them)
        datamodule.deal_by_replica(members.replica, members.replicas)
