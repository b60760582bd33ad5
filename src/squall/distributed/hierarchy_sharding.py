"""One rank's shard of a HierarchicalProcessor (squall.models.hierarchical), and its sweep.

Every level is cut into contiguous, balanced node ranges, one per rank; a rank's range of a
coarser level is the one sharing the most down and up edges with its range of the finer level,
so that most mapper edges stay on the rank. Each level's own edges, the down edges and the up
edges are sharded by destination (edge_sharding), like the network's other edge sets: a level's
processor halo-exchanges its sources once per layer, a mapper brings in the finer (down) or
coarser (up) rows its edges read. The sweep is the processor's own, on the shard: the same
modules, the same order, the same skips.
"""

from __future__ import annotations

import torch

from squall.distributed.edge_sharding import ShardEdges, matched_ranges, shard_edges
from squall.distributed.exchange import Range
from squall.distributed.groups import ModelGroups
from squall.models.hierarchical import HierarchicalProcessor, level_name


class HierarchySharding:
    """This rank's node range of every level below the first (`hidden`, whose `ranges` the grid
    sharding gives) and its shards of the levels' edges, down edges and up edges."""

    def __init__(
        self, processor: HierarchicalProcessor, hidden: list[Range], groups: ModelGroups
    ) -> None:
        ranges = [hidden]
        self.level_edges: list[ShardEdges] = []
        self.down_edges: list[ShardEdges] = []
        self.up_edges: list[ShardEdges] = []
        for level in range(1, processor.num_levels):
            num_nodes = len(getattr(processor, f"level{level}_positions"))
            if num_nodes < groups.shards:
                raise ValueError(
                    f"the hierarchy level {level_name(level)!r} has {num_nodes} nodes, fewer "
                    f"than num_gpus_per_model={groups.shards} grid shards; use fewer shards or "
                    "a hierarchy with finer coarse levels"
                )
            down = getattr(processor, f"down{level}_edge_index")
            up = getattr(processor, f"up{level}_edge_index")
            ranges.append(matched_ranges(num_nodes, [(down, 1), (up, 0)], ranges[-1]))
            fine, coarse = ranges[level - 1], ranges[level]
            edge_index = getattr(processor, f"level{level}_edge_index")
            self.level_edges.append(shard_edges(edge_index, coarse, coarse, groups))
            self.down_edges.append(shard_edges(down, fine, coarse, groups))
            self.up_edges.append(shard_edges(up, coarse, fine, groups))
        self.nodes = [slice(*level_ranges[groups.shard]) for level_ranges in ranges]

    def forward(
        self,
        processor: HierarchicalProcessor,
        x: torch.Tensor,
        hidden_edges: ShardEdges,
        hidden_edge_attr: torch.Tensor,
        condition: torch.Tensor | None,
    ) -> torch.Tensor:
        """x (batch, this rank's `hidden` nodes, channels) -> the same, after the down and up
        sweep; `hidden_edges` and `hidden_edge_attr`: this rank's shard of the first level's
        processor edges, which the grid sharding makes for every graph processor."""
        device, batch = x.device, x.shape[0]
        levels = [(hidden_edges, hidden_edge_attr)] + [
            (edges, getattr(processor, f"level{level}_edge_attr")[edges.edge_slice])
            for level, edges in enumerate(self.level_edges, start=1)
        ]

        def process(run, level: int, nodes: torch.Tensor) -> torch.Tensor:
            edges, edge_attr = levels[level]
            return run(nodes, edges.index(device), edge_attr, condition, edges.exchange)

        def map_onto(mapper, edges: ShardEdges, name: str, sources, targets) -> torch.Tensor:
            edge_attr = getattr(processor, f"{name}_edge_attr")[edges.edge_slice]
            return mapper.update_targets(
                edges.exchange(sources), targets, edges.index(device), edge_attr, edges.chunks
            )

        skips = []
        for level in range(processor.num_levels - 1):
            x = process(processor.down_processors[level], level, x)
            skips.append(x)
            static = torch.cat(
                [
                    getattr(processor, f"level{level + 1}_positions"),
                    processor.coarse_node_parameters[level],
                ],
                dim=-1,
            )[self.nodes[level + 1]]
            coarse = processor.coarse_embedding(static).expand(batch, -1, -1)
            down = self.down_edges[level]
            x = map_onto(processor.down_mappers[level], down, f"down{level + 1}", x, coarse)
        x = process(processor.down_processors[-1], processor.num_levels - 1, x)
        for level in reversed(range(processor.num_levels - 1)):
            up = self.up_edges[level]
            x = map_onto(processor.up_mappers[level], up, f"up{level + 1}", x, skips[level])
            x = process(processor.up_processors[level], level, x)
        return x
