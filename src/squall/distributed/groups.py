"""Model groups: `num_gpus_per_model` consecutive ranks hold one model replica between them;
ensemble groups: `num_gpus_per_ensemble` consecutive ranks share the members of one initial
condition.

Rank r belongs to model group r // n (n = num_gpus_per_model) and holds grid shard r % n of it.
An ensemble group of e ranks (a multiple of n) holds e / n model groups, each computing its part
of the members. The data-parallel replicas are the ensemble groups (the model groups when e = 1),
so samples are dealt by that index (`replica`), not the global rank: every rank of a group reads
the same samples. Consecutive ranks share a node where possible, so the exchanges inside a group
stay on NVLink.
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


def check_num_gpus_per_ensemble(
    num_gpus_per_ensemble: int, num_gpus_per_model: int, world_size: int
) -> None:
    """A clear error unless the world splits into whole ensemble groups of whole model groups."""
    if num_gpus_per_ensemble == 1:
        return
    if (
        num_gpus_per_ensemble < 1
        or world_size % num_gpus_per_ensemble
        or num_gpus_per_ensemble % num_gpus_per_model
    ):
        raise ValueError(
            f"system.hardware.num_gpus_per_ensemble={num_gpus_per_ensemble} must divide the "
            f"{world_size} processes of this run (devices x num_nodes) and be a multiple of "
            f"num_gpus_per_model={num_gpus_per_model}; pick such a value, or 1 to keep each "
            "rank's members to itself"
        )


@dataclass(frozen=True)
class MemberGroups:
    """This rank's place among the ensemble groups: member part `part` of `parts` in ensemble
    group `replica` of `replicas`. `group` is the process group of the ranks that hold the
    other parts of the same members' grid shard (None when the members are not spread)."""

    rank: int
    world_size: int
    ranks_per_model: int
    parts: int
    group: dist.ProcessGroup | None

    @property
    def ranks_per_replica(self) -> int:
        return self.ranks_per_model * self.parts

    @property
    def part(self) -> int:
        return (self.rank // self.ranks_per_model) % self.parts

    @property
    def replica(self) -> int:
        return self.rank // self.ranks_per_replica

    @property
    def replicas(self) -> int:
        return self.world_size // self.ranks_per_replica

    def members(self, total: int) -> range:
        """The global indices of this rank's members, out of `total` per initial condition."""
        if total % self.parts:
            raise ValueError(
                f"task.ensemble.members={total} does not split over the {self.parts} member "
                "parts of an ensemble group (num_gpus_per_ensemble / num_gpus_per_model); "
                f"pick a multiple of {self.parts}"
            )
        size = total // self.parts
        return range(self.part * size, (self.part + 1) * size)


def member_groups(
    num_gpus_per_ensemble: int, num_gpus_per_model: int, world_size: int, rank: int
) -> MemberGroups:
    """Make the member gather groups (a collective over the whole world, like model_groups:
    every rank calls it, in the same order) and return this rank's place."""
    check_num_gpus_per_model(num_gpus_per_model, world_size)
    check_num_gpus_per_ensemble(num_gpus_per_ensemble, num_gpus_per_model, world_size)
    parts = max(1, num_gpus_per_ensemble // num_gpus_per_model)
    group = None
    if parts > 1:
        if not dist.is_initialized():
            raise RuntimeError(
                "ensemble groups need torch.distributed initialised (launch with Lightning, "
                "torchrun or srun)"
            )
        for first in range(0, world_size, num_gpus_per_ensemble):
            for shard in range(num_gpus_per_model):
                ranks = list(
                    range(first + shard, first + num_gpus_per_ensemble, num_gpus_per_model)
                )
                made = dist.new_group(ranks)
                if rank in ranks:
                    group = made
    return MemberGroups(rank, world_size, num_gpus_per_model, parts, group)
