"""Model sharding in a Lightning run: group the ranks once torch.distributed is up, then give
the model, the loss and the data loaders this rank's grid shard.

Gradients: each rank's loss is the whole grid's (the shards' partial sums, all-reduced with
autograd), so the backward of that all-reduce and of the exchanges hands every rank of a group
its part of num_gpus_per_model x the replica's gradient; DDP's mean over all ranks then gives
the mean over replicas of the unsharded gradient. Nothing is rescaled by hand.
"""

from __future__ import annotations

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities import rank_zero_info

from squall.distributed.grid_sharding import GridSharding
from squall.distributed.groups import ModelGroups, model_groups
from squall.training.forecaster import Forecaster
from squall.training.losses import CombinedLoss, WeightedLoss


def shard_task(task: pl.LightningModule, groups: ModelGroups) -> GridSharding:
    """Install this rank's grid shard into a training task (the deterministic Forecaster): its
    model's network runs on the shard, and its loss is the shard's part of the whole grid's."""
    if type(task) is not Forecaster or not isinstance(task.loss, (WeightedLoss, CombinedLoss)):
        raise ValueError(
            "model sharding (num_gpus_per_model > 1) is implemented for the deterministic "
            f"forecaster with the weighted losses, not for {type(task).__name__} with "
            f"{type(task.loss).__name__}; use num_gpus_per_model: 1 for this method"
        )
    model = task.model
    if getattr(model, "forced", None) is not None:
        raise ValueError(
            "model sharding (num_gpus_per_model > 1) does not support a limited-area boundary "
            "yet; train the limited-area model with num_gpus_per_model: 1"
        )
    sharding = GridSharding(model.network, groups)
    model.network.grid_sharding = sharding
    for module in task.loss.modules():
        if isinstance(module, WeightedLoss):
            module.grid_shard = sharding
    return sharding


class ModelSharding(Callback):
    """Groups the ranks into model groups of `num_gpus_per_model` at setup (launched by
    Lightning, torchrun or srun alike: the world is known by then) and shards the run."""

    def __init__(self, num_gpus_per_model: int) -> None:
        self.num_gpus_per_model = num_gpus_per_model
        self.groups: ModelGroups | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.groups is not None:  # fit after validate: the groups already exist
            return
        self.groups = model_groups(self.num_gpus_per_model, trainer.world_size, trainer.global_rank)
        shard_task(pl_module, self.groups)
        trainer.datamodule.read_grid_shard(
            self.groups.shard, self.groups.shards, self.groups.replica, self.groups.replicas
        )
        rank_zero_info(
            f"Model sharding: {self.groups.replicas} model replica(s) x "
            f"{self.groups.shards} grid shards (num_gpus_per_model)"
        )
