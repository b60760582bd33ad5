"""Moving rows between the grid shards of one model group, differentiably.

Node features are (batch, nodes, channels) with the nodes cut into contiguous shards, one per
rank of the group. Each collective is an autograd Function whose backward is its adjoint (an
all-to-all back the other way; an all-reduce of the gradients), so the gradients of a sharded
model are those of the whole one.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from squall.data.datamodule import grid_shard


class _AllToAll(torch.autograd.Function):
    """Rows along dim 0: the first send_counts[0] go to rank 0 of the group, and so on; the
    result holds receive_counts[t] rows from each rank t, in rank order."""

    @staticmethod
    def forward(ctx, rows, send_counts, receive_counts, group):
        ctx.counts, ctx.group = (send_counts, receive_counts), group
        received = rows.new_empty((sum(receive_counts), *rows.shape[1:]))
        dist.all_to_all_single(received, rows.contiguous(), receive_counts, send_counts, group)
        return received

    @staticmethod
    def backward(ctx, gradient):
        send_counts, receive_counts = ctx.counts
        returned = gradient.new_empty((sum(send_counts), *gradient.shape[1:]))
        dist.all_to_all_single(
            returned, gradient.contiguous(), send_counts, receive_counts, ctx.group
        )
        return returned, None, None, None


class _SumOverGroup(torch.autograd.Function):
    """y = sum of x over the group's ranks, on each; every rank's objective reads y, so the
    gradient of x is the sum of the ranks' gradients of y."""

    @staticmethod
    def forward(ctx, tensor, group):
        ctx.group = group
        total = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total, group=group)
        return total

    @staticmethod
    def backward(ctx, gradient):
        total = gradient.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total, group=ctx.group)
        return total, None


def sum_over_shards(tensor: torch.Tensor, group: dist.ProcessGroup | None) -> torch.Tensor:
    """The sum of `tensor` over the ranks of `group`, on every rank (identity without one)."""
    if group is None or dist.get_world_size(group) == 1:
        return tensor
    return _SumOverGroup.apply(tensor, group)


def _exchange(
    rows: torch.Tensor, send_counts: list[int], receive_counts: list[int], group
) -> torch.Tensor:
    return _AllToAll.apply(rows, send_counts, receive_counts, group)


Range = tuple[int, int]  # a rank's contiguous nodes [start, end)


def shard_ranges(num_nodes: int, shards: int) -> list[Range]:
    """Contiguous, balanced ranges in index order: the split the datamodule reads with."""
    parts = [grid_shard(num_nodes, shard, shards) for shard in range(shards)]
    return [(part.start, part.stop) for part in parts]


def owner_order(indices: torch.Tensor, ranges: list[Range]) -> torch.Tensor:
    """Unique global `indices` sorted by the rank whose range holds them, then by index: the
    order in which an exchange delivers them."""
    owners = torch.zeros_like(indices)
    for rank, (start, end) in enumerate(ranges):
        owners[(indices >= start) & (indices < end)] = rank
    span = int(indices.max()) + 1 if indices.numel() else 1
    return indices[torch.argsort(owners * span + indices)]


class SourceExchange:
    """Brings to this rank the source rows its edges need, from the ranks that own them.

    `needed[t]` are the global source indices rank t of the group needs, in owner_order; each
    rank sends the ones in its own range (`ranges[rank]`), in index order. The result holds
    this rank's needed rows in that same order.
    """

    def __init__(
        self,
        needed: list[torch.Tensor],
        ranges: list[Range],
        shard: int,
        group: dist.ProcessGroup | None,
    ) -> None:
        self.group = group
        start, end = ranges[shard]
        owned = [indices[(indices >= start) & (indices < end)] - start for indices in needed]
        self.send_counts = [len(indices) for indices in owned]
        self.receive_counts = [
            int(((needed[shard] >= first) & (needed[shard] < last)).sum()) for first, last in ranges
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
    transformer): rank t of the group trades its node range of every head for every node of
    heads [t h/n, (t+1) h/n), and back after the attention. Ranges may be held in any rank
    order; the sequence is put back in node order."""

    def __init__(self, ranges: list[Range], shard: int, group: dist.ProcessGroup | None) -> None:
        self.shards, self.group = len(ranges), group
        self.node_counts = [end - start for start, end in ranges]
        self.local_nodes = self.node_counts[shard]
        # ranks in the order of their ranges along the sequence
        self.sequence_order = sorted(range(self.shards), key=lambda rank: ranges[rank][0])

    def _to_sequence_order(self, rows: torch.Tensor) -> torch.Tensor:
        """Blocks of rows in rank order -> in node order (dim 0)."""
        if self.sequence_order == list(range(self.shards)):
            return rows
        blocks = rows.split(self.node_counts)
        return torch.cat([blocks[rank] for rank in self.sequence_order])

    def _to_rank_order(self, rows: torch.Tensor) -> torch.Tensor:
        """Blocks of rows in node order -> in rank order (dim 0)."""
        if self.sequence_order == list(range(self.shards)):
            return rows
        blocks = rows.split([self.node_counts[rank] for rank in self.sequence_order])
        by_rank = dict(zip(self.sequence_order, blocks, strict=True))
        return torch.cat([by_rank[rank] for rank in range(self.shards)])

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
        )  # (all nodes, batch, parts, heads / n, d), ranges in rank order
        return self._to_sequence_order(received).permute(1, 0, 2, 3, 4)

    def to_nodes(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, all nodes, heads / n, d) -> (batch, local nodes, heads, d)."""
        if self.shards == 1:
            return x
        batch, _, heads, channels = x.shape
        received = _exchange(
            self._to_rank_order(x.transpose(0, 1)),
            self.node_counts,
            [self.local_nodes] * self.shards,
            self.group,
        )  # (n * local nodes, batch, heads / n, d): rank t's heads in block t
        received = received.reshape(self.shards, self.local_nodes, batch, heads, channels)
        return received.permute(2, 1, 0, 3, 4).reshape(
            batch, self.local_nodes, self.shards * heads, channels
        )
