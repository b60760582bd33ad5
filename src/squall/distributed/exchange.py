"""Moving rows between the grid shards of one model group, differentiably.

Node features are (batch, nodes, channels) with the nodes cut into contiguous shards, one per
rank of the group. The collectives are torch.distributed.nn.functional's, whose backward is the
adjoint exchange (an all-to-all back the other way, an all-reduce of the gradients), so the
gradients of a sharded model are those of the whole one.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch.distributed.nn.functional import all_reduce, all_to_all_single

from squall.data.datamodule import grid_shard


def sum_over_shards(tensor: torch.Tensor, group: dist.ProcessGroup | None) -> torch.Tensor:
    """The sum of `tensor` over the ranks of `group`, on every rank (identity without one)."""
    if group is None or dist.get_world_size(group) == 1:
        return tensor
    return all_reduce(tensor, group=group)


def _exchange(
    rows: torch.Tensor, send_counts: list[int], receive_counts: list[int], group
) -> torch.Tensor:
    """all-to-all along dim 0: rows[first send_counts[0]] go to rank 0 of the group, ..."""
    received = rows.new_empty((sum(receive_counts), *rows.shape[1:]))
    return all_to_all_single(received, rows.contiguous(), receive_counts, send_counts, group)


def shard_bounds(num_nodes: int, shards: int) -> list[int]:
    """Start of each contiguous shard, then the end: the split the datamodule reads with."""
    return [grid_shard(num_nodes, shard, shards).start for shard in range(shards)] + [num_nodes]


class SourceExchange:
    """Brings to this rank the source rows its edges need, from the shards that own them.

    `needed[t]` are the (sorted, unique) global source indices rank t of the group needs; each
    rank sends the ones it owns. The result holds this rank's needed rows in ascending global
    order (owners are contiguous and in rank order), so edges index it with
    searchsorted(needed[rank], source).
    """

    def __init__(
        self,
        needed: list[torch.Tensor],
        bounds: list[int],
        shard: int,
        group: dist.ProcessGroup | None,
    ) -> None:
        self.group = group
        start, end = bounds[shard], bounds[shard + 1]
        owned = [indices[(indices >= start) & (indices < end)] - start for indices in needed]
        self.send_counts = [len(indices) for indices in owned]
        self.receive_counts = [
            int(((needed[shard] >= bounds[t]) & (needed[shard] < bounds[t + 1])).sum())
            for t in range(len(needed))
        ]
        self.send_index = torch.cat(owned)
        # One shard holding every node it needs (num_gpus_per_model = 1): nothing to move.
        self.identity = len(needed) == 1 and torch.equal(self.send_index, torch.arange(end - start))
        self._on_device: dict[torch.device, torch.Tensor] = {}

    def _send_index(self, device: torch.device) -> torch.Tensor:
        if device not in self._on_device:
            self._on_device[device] = self.send_index.to(device)
        return self._on_device[device]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x (batch, local nodes, channels) -> (batch, needed nodes, channels)."""
        if self.identity:
            return x
        rows = x.index_select(1, self._send_index(x.device))
        if len(self.send_counts) == 1:
            return rows
        received = _exchange(
            rows.transpose(0, 1), self.send_counts, self.receive_counts, self.group
        )
        return received.transpose(0, 1)


class HeadExchange:
    """Head sharding for attention over the whole node sequence (the sliding-window
    transformer): rank t of the group trades its node shard of every head for every node of
    heads [t h/n, (t+1) h/n), and back after the attention."""

    def __init__(self, bounds: list[int], shard: int, group: dist.ProcessGroup | None) -> None:
        self.shards, self.group = len(bounds) - 1, group
        self.node_counts = [bounds[t + 1] - bounds[t] for t in range(self.shards)]
        self.local_nodes = self.node_counts[shard]

    def check_heads(self, num_heads: int) -> None:
        if num_heads % self.shards:
            raise ValueError(
                f"the transformer processor shards its {num_heads} heads over "
                f"num_gpus_per_model={self.shards} ranks; pick num_heads divisible by it"
            )

    def to_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, local nodes, parts, heads, d) -> (batch, all nodes, parts, heads / n, d)."""
        if self.shards == 1:
            return x
        batch, nodes, parts, heads, channels = x.shape
        # (n, local nodes, batch, parts, heads / n, d): block t goes to rank t
        blocks = x.reshape(batch, nodes, parts, self.shards, heads // self.shards, channels)
        blocks = blocks.permute(3, 1, 0, 2, 4, 5).flatten(0, 1)
        received = _exchange(
            blocks, [self.local_nodes] * self.shards, self.node_counts, self.group
        )  # (all nodes, batch, parts, heads / n, d), in node order
        return received.permute(1, 0, 2, 3, 4)

    def to_nodes(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, all nodes, heads / n, d) -> (batch, local nodes, heads, d)."""
        if self.shards == 1:
            return x
        batch, _, heads, channels = x.shape
        received = _exchange(
            x.transpose(0, 1), self.node_counts, [self.local_nodes] * self.shards, self.group
        )  # (n * local nodes, batch, heads / n, d): rank t's heads in block t
        received = received.reshape(self.shards, self.local_nodes, batch, heads, channels)
        return received.permute(2, 1, 0, 3, 4).reshape(
            batch, self.local_nodes, self.shards * heads, channels
        )
