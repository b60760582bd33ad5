"""Model groups: `num_gpus_per_model` consecutive ranks hold one model replica between them.

Rank r belongs to model group r // n (n = num_gpus_per_model) and holds grid shard r % n of it;
the data-parallel replicas are the model groups, so samples are dealt by the group index
(`replica`), not the global rank: every rank of a group reads the same samples. Consecutive
ranks share a node where possible, so the exchanges inside a group stay on NVLink.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.distributed as dist


def check_num_gpus_per_model(num_gpus_per_model: int, world_size: int) -> None:
    """A clear error unless the world splits into whole model groups."""
    if num_gpus_per_model < 1 or world_size % num_gpus_per_model:
        raise ValueError(
            f"system.hardware.num_gpus_per_model={num_gpus_per_model} does not divide the "
            f"{world_size} processes of this run (devices x num_nodes); pick a divisor of "
            f"{world_size}, or change devices/num_nodes"
        )


@dataclass(frozen=True)
class ModelGroups:
    """This rank's place: shard `shard` of `shards` in model group `replica` of `replicas`.
    `group` is the process group of its model group (None when a shard is the whole grid)."""

    rank: int
    world_size: int
    shards: int
    group: dist.ProcessGroup | None

    @property
    def shard(self) -> int:
        return self.rank % self.shards

    @property
    def replica(self) -> int:
        return self.rank // self.shards

    @property
    def replicas(self) -> int:
        return self.world_size // self.shards

    @property
    def leader(self) -> int:
        """The global rank of this group's shard 0."""
        return self.replica * self.shards


def model_groups(num_gpus_per_model: int, world_size: int, rank: int) -> ModelGroups:
    """Make the model groups (every rank must call this, in the same order: new_group is a
    collective over the whole world) and return this rank's."""
    check_num_gpus_per_model(num_gpus_per_model, world_size)
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside 0..{world_size - 1}")
    group = None
    if world_size > 1 or num_gpus_per_model > 1:
        if not dist.is_initialized():
            raise RuntimeError(
                "model groups need torch.distributed initialised (launch with Lightning, "
                "torchrun or srun)"
            )
        for leader in range(0, world_size, num_gpus_per_model):
            ranks = list(range(leader, leader + num_gpus_per_model))
            made = dist.new_group(ranks)
            if rank in ranks:
                group = made
    return ModelGroups(rank, world_size, num_gpus_per_model, group)
