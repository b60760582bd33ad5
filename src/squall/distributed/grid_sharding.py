"""One rank's shard of an EncoderProcessorDecoder, and its forward.

The data points and the hidden nodes are each cut into contiguous ranges (squall's node
orderings are spatially compact, so a contiguous range is a compact region), equal in nodes or,
with shard_balance "edges", in the edges each range computes (shard_layout). Rank t reads data
range t (the datamodule reads the sharding's range); it holds the hidden range that shares the
most encoder and decoder edges with it (the two node sets may be ordered differently, e.g. north
to south and south to north), so that most mapper edges stay on the rank. Every edge set
is sharded by destination: a rank runs the edges into its own nodes, after bringing in the
source rows they read from the other shards (SourceExchange; in the processor, once per layer:
a halo exchange). The transformer processor trades node shards for head shards around its
attention instead (HeadExchange); the hierarchical processor shards every level
(hierarchy_sharding). The layer kernels are the network's own, unchanged.
"""

from __future__ import annotations

import torch

from squall.distributed.edge_sharding import (
    balanced_ranges,
    incoming_edges,
    matched_ranges,
    shard_edges,
)
from squall.distributed.exchange import HeadExchange, Range, shard_ranges, sum_over_shards
from squall.distributed.groups import ModelGroups
from squall.distributed.hierarchy_sharding import HierarchySharding
from squall.models.encoder_processor_decoder import EncoderProcessorDecoder

SHARD_BALANCES = ("points", "edges")


def node_loads(network: EncoderProcessorDecoder) -> tuple[torch.Tensor, torch.Tensor]:
    """The edges each (data point, hidden node) computes as a target: decoder edges into data
    points; encoder edges and, once per processor layer, processor edges into hidden nodes."""
    data = incoming_edges(network.decoder_edge_index, network.num_data_nodes)
    hidden = incoming_edges(network.encoder_edge_index, network.num_hidden_nodes)
    spec = network.spec
    if spec["processor"] != "transformer":  # its attention is split by heads, not nodes
        processor = incoming_edges(network.processor_edge_index, network.num_hidden_nodes)
        hidden = hidden + spec["processor_layers"] * processor
    return data, hidden


def shard_loads(
    network: EncoderProcessorDecoder, data: list[Range], hidden: list[Range]
) -> list[int]:
    """Each rank's edge load under a layout (its data range's plus its hidden range's)."""
    data_load, hidden_load = node_loads(network)
    return [
        int(data_load[slice(*d)].sum() + hidden_load[slice(*h)].sum())
        for d, h in zip(data, hidden, strict=True)
    ]


def shard_layout(
    network: EncoderProcessorDecoder, shards: int, balance: str = "points"
) -> tuple[list[Range], list[Range]]:
    """Each rank's (data points, hidden nodes) range: the one place that decides them, for the
    model and (through GridSharding.data_points) the data it reads. "points": equal node
    counts; "edges": equal edge loads (node_loads). Each node set is balanced on its own, so
    their sum per rank is balanced whichever ranges the matching pairs."""
    if balance not in SHARD_BALANCES:
        raise ValueError(
            f"system.hardware.shard_balance={balance!r} is not one of {SHARD_BALANCES}: "
            "'points' splits nodes equally, 'edges' splits their incoming edges equally"
        )
    num_data, num_hidden = network.num_data_nodes, network.num_hidden_nodes
    if balance == "points":
        data, hidden = shard_ranges(num_data, shards), shard_ranges(num_hidden, shards)
    else:
        data_load, hidden_load = node_loads(network)
        data, hidden = balanced_ranges(data_load, shards), balanced_ranges(hidden_load, shards)
    hidden = matched_ranges(
        num_hidden,
        [(network.encoder_edge_index, 1), (network.decoder_edge_index, 0)],
        data,
        hidden,
    )
    return data, hidden


class GridSharding:
    """This rank's layout of `network` (built on every rank of the group from the same graph)
    and the sharded forward: x (batch, this shard's data points, in_channels) -> (batch, this
    shard's data points, out_channels). A plain object, not a module: its per-rank index
    tensors must stay out of the model's state and out of DDP's buffer broadcast."""

    def __init__(
        self, network: EncoderProcessorDecoder, groups: ModelGroups, balance: str = "points"
    ) -> None:
        spec = network.spec
        self.groups = groups
        shard = groups.shard
        data, hidden = shard_layout(network, groups.shards, balance)
        self.num_data_points = network.num_data_nodes
        self.data_points, self.hidden_points = slice(*data[shard]), slice(*hidden[shard])
        chunks = spec["num_chunks"]
        self.edges = {
            "encoder": shard_edges(network.encoder_edge_index, data, hidden, groups, chunks),
            "decoder": shard_edges(network.decoder_edge_index, hidden, data, groups, chunks),
        }
        self.heads = None
        if spec["processor"] == "transformer":
            self.heads = HeadExchange(hidden, shard, groups.group)
            self.heads.check_heads(spec["num_heads"])
        else:
            self.edges["processor"] = shard_edges(
                network.processor_edge_index, hidden, hidden, groups
            )
        self.hierarchy = None
        if spec["hierarchy_levels"] > 1:
            self.hierarchy = HierarchySharding(network.processor, hidden, groups)

    def __deepcopy__(self, memo: dict) -> GridSharding:
        # A copy of the network (an EMA of the weights) runs on this rank too: same layout.
        return self

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum over the shards of this model group (differentiable)."""
        return sum_over_shards(tensor, self.groups.group)

    def weight(self, weight: torch.Tensor) -> torch.Tensor:
        """A loss weight (B, T, E, G, V)-broadcastable over the whole grid -> this shard's
        part. A weight uniform over the grid (G = 1: a mean over points) becomes 1 / points
        of the whole grid on each of the shard's points, so the shards' sums add up to it."""
        if weight.shape[3] == 1:
            local = self.data_points.stop - self.data_points.start
            return (weight / self.num_data_points).expand(-1, -1, -1, local, -1)
        return weight[:, :, :, self.data_points]

    def forward(
        self, network: EncoderProcessorDecoder, x: torch.Tensor, noise: torch.Tensor | None
    ) -> torch.Tensor:
        """`noise` (batch, noise_channels): the ensemble variant's, the same on every shard."""
        spec = network.spec
        if spec["noise_channels"] and noise is None:
            raise ValueError(
                "under model sharding the ensemble noise must be given (the ensemble forecaster "
                "seeds it), so that every grid shard of a member conditions on the same noise"
            )
        expected = (self.data_points.stop - self.data_points.start, spec["in_channels"])
        if x.dim() != 3 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"Expected this grid shard's input of shape (batch, {expected[0]} data points, "
                f"{expected[1]} channels), got {tuple(x.shape)}: under model sharding each rank "
                "passes only its own shard of the grid (ForecastDataModule reads it)."
            )
        batch = x.shape[0]
        data_static = torch.cat([network.data_positions, network.data_node_parameters], dim=-1)[
            self.data_points
        ]
        data_nodes = network.grid_mlp(
            "encoder", network.data_embedding, torch.cat([x, data_static.expand(batch, -1, -1)], -1)
        )
        hidden_static = torch.cat(
            [network.hidden_positions, network.hidden_node_parameters], dim=-1
        )[self.hidden_points]
        hidden_nodes = network.hidden_embedding(hidden_static).expand(batch, -1, -1)

        encoder = self.edges["encoder"]
        hidden_nodes = network.encoder.update_targets(
            encoder.exchange(data_nodes),
            hidden_nodes,
            encoder.index(x.device),
            network._edge_inputs("encoder")[encoder.edge_slice],
            encoder.chunks,
        )
        data_nodes = network.encoder.update_sources(data_nodes)
        if self.heads is not None:
            hidden_nodes = network.processor(hidden_nodes, None, None, noise, self.heads)
        elif self.hierarchy is not None:
            processor = self.edges["processor"]
            hidden_nodes = self.hierarchy.forward(
                network.processor,
                hidden_nodes,
                processor,
                network._edge_inputs("processor")[processor.edge_slice],
                noise,
            )
        else:
            processor = self.edges["processor"]
            hidden_nodes = network.processor(
                hidden_nodes,
                processor.index(x.device),
                network._edge_inputs("processor")[processor.edge_slice],
                noise,
                processor.exchange,
            )
        decoder = self.edges["decoder"]
        data_nodes = network.decoder.update_targets(
            decoder.exchange(hidden_nodes),
            data_nodes,
            decoder.index(x.device),
            network._edge_inputs("decoder")[decoder.edge_slice],
            decoder.chunks,
        )
        return network.grid_mlp("decoder", network.output_mlp, data_nodes)
