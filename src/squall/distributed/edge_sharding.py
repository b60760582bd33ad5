"""Sharding one edge set of a network by destination, splitting a node set into contiguous
ranges (equal in nodes or in incoming edges), and dealing the ranges to ranks.

A rank runs the edges into its own targets, after bringing in the source rows they read from
the other shards (SourceExchange). Every rank computes every rank's plan from the whole graph,
so making a plan needs no communication.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from scipy.optimize import linear_sum_assignment

from squall.distributed.exchange import Range, SourceExchange, owner_order, shard_ranges
from squall.distributed.groups import ModelGroups
from squall.models.blocks import target_chunks


@dataclass
class ShardEdges:
    """The edges into this shard's targets: `edge_slice` of the (target-sorted) edge set, with
    `edge_index` rows (position in the exchanged sources, position among the local targets)."""

    edge_slice: slice
    edge_index: torch.Tensor
    chunks: list[tuple[int, int, int, int]]
    exchange: SourceExchange
    _on_device: dict[torch.device, torch.Tensor] = field(default_factory=dict)

    def index(self, device: torch.device) -> torch.Tensor:
        if device not in self._on_device:
            self._on_device[device] = self.edge_index.to(device)
        return self._on_device[device]


def shard_edges(
    edge_index: torch.Tensor,
    source_ranges: list[Range],
    target_ranges: list[Range],
    groups: ModelGroups,
    num_chunks: int = 1,
) -> ShardEdges:
    """Shard an edge set (sorted by target) by destination. Every rank computes every rank's
    needs from the whole graph, so the exchange plan needs no communication."""
    edge_index = edge_index.cpu()
    targets = edge_index[1]

    def edges_into(target_range: Range) -> slice:
        first, last = torch.searchsorted(targets, torch.tensor(target_range)).tolist()
        return slice(first, last)

    needed = [
        owner_order(torch.unique(edge_index[0, edges_into(target_range)]), source_ranges)
        for target_range in target_ranges
    ]
    shard = groups.shard
    edge_slice = edges_into(target_ranges[shard])
    position = torch.full((int(edge_index[0].max()) + 1 if targets.numel() else 1,), -1)
    position[needed[shard]] = torch.arange(len(needed[shard]))
    start, end = target_ranges[shard]
    local = torch.stack([position[edge_index[0, edge_slice]], edge_index[1, edge_slice] - start])
    return ShardEdges(
        edge_slice,
        local,
        target_chunks(local[1], end - start, num_chunks),
        SourceExchange(needed, source_ranges, shard, groups.group),
    )


def incoming_edges(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """The number of edges into each of `num_nodes` targets."""
    return torch.bincount(edge_index[1].cpu(), minlength=num_nodes)


def balanced_ranges(load: torch.Tensor, shards: int) -> list[Range]:
    """Contiguous, non-empty ranges of the nodes in index order whose summed `load` (one
    non-negative number per node) is as equal as possible: each boundary in turn leaves the
    load still to split nearest an equal share for the ranges still to come (so a heavy node
    that must be a range of its own leaves the rest evenly split). Without load, equal nodes."""
    num_nodes = len(load)
    if num_nodes < shards:
        raise ValueError(f"{num_nodes} nodes cannot be split into {shards} non-empty grid shards")
    before = torch.cat([torch.zeros(1, dtype=torch.float64), load.double().cumsum(0)])
    total = float(before[-1])
    if total == 0:
        return shard_ranges(num_nodes, shards)
    bounds = [0]
    for part in range(1, shards):
        done = float(before[bounds[-1]])
        goal = done + (total - done) / (shards - part + 1)
        above = int(torch.searchsorted(before, torch.tensor([goal], dtype=torch.float64)))
        nearest = min(
            (b for b in (above - 1, above) if 0 <= b <= num_nodes),
            key=lambda b: abs(float(before[b]) - goal),
        )
        # every range keeps at least one node
        bounds.append(min(max(nearest, bounds[-1] + 1), num_nodes - (shards - part)))
    bounds.append(num_nodes)
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def matched_ranges(
    num_nodes: int,
    edge_sets: list[tuple[torch.Tensor, int]],
    other: list[Range],
    ranges: list[Range] | None = None,
) -> list[Range]:
    """Contiguous ranges of `num_nodes` nodes (`ranges`, in index order; by default the equal
    split), one per rank, dealt so that the edges between each rank's range and its range
    `other[rank]` of another node set are as many as possible. `edge_sets`: (edge_index, the
    row holding these nodes; the other row holds the other set's)."""
    shards = len(other)
    ranges = shard_ranges(num_nodes, shards) if ranges is None else ranges
    if shards == 1:
        return ranges
    shared = torch.zeros(shards, shards)  # these nodes' range x the other set's range
    for edge_index, row in edge_sets:
        edge_index = edge_index.cpu()
        mine = torch.bucketize(
            edge_index[row], torch.tensor([s for s, _ in ranges[1:]]), right=True
        )
        theirs = torch.bucketize(
            edge_index[1 - row], torch.tensor([s for s, _ in other[1:]]), right=True
        )
        shared.index_put_((mine, theirs), torch.ones(len(mine)), accumulate=True)
    range_of, rank_of = linear_sum_assignment(shared.numpy(), maximize=True)
    by_rank = dict(zip(rank_of.tolist(), range_of.tolist(), strict=True))
    return [ranges[by_rank[rank]] for rank in range(shards)]
