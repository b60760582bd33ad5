"""Interaction-network message passing on batched node features, and the mapper/processor
blocks built from it.

Shapes: node features are (batch, nodes, channels); edge features are (edges, channels) when
they do not depend on the sample (embedded static edge attributes) or (batch, edges, channels)
once a layer has updated them. `edge_index` is (2, edges) with row 0 the source node and row 1
the target node. The batch dimension is handled by gathering/scattering along dim 1, so one
kernel call serves the whole batch.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from squall.models.layers import MLP


def sum_at_targets(
    messages: torch.Tensor, target_index: torch.Tensor, num_targets: int
) -> torch.Tensor:
    """Sum `messages` (batch, edges, channels) into (batch, num_targets, channels).

    Half-precision messages (bf16/fp16 under autocast) are summed in fp32: index_add needs one
    dtype for accumulator and source, and a high-degree node summed in bf16 loses most of the
    small contributions.
    """
    accumulate_dtype = torch.float32 if messages.element_size() < 4 else messages.dtype
    batch, _, channels = messages.shape
    accumulator = messages.new_zeros((batch, num_targets, channels), dtype=accumulate_dtype)
    return accumulator.index_add(1, target_index, messages.to(accumulate_dtype))


class GraphMessagePassing(nn.Module):
    """One interaction-network layer (as in GraphCast) from source to target nodes.

    edge_update = edge_mlp([x_src[src], x_dst[dst], e]);   e_new = e + edge_update
    x_dst_new = x_dst + node_mlp([x_dst, sum of edge_update over incoming edges])

    Source and target node sets may be the same (processor: pass the same tensor twice) or
    differ (mappers). Returns (x_dst_new, e_new).
    """

    def __init__(
        self,
        node_channels: int,
        edge_channels: int,
        mlp_hidden_layers: int = 1,
        activation: str = "SiLU",
    ) -> None:
        super().__init__()
        self.edge_mlp = MLP(
            2 * node_channels + edge_channels,
            edge_channels,
            edge_channels,
            num_hidden_layers=mlp_hidden_layers,
            activation=activation,
        )
        self.node_mlp = MLP(
            node_channels + edge_channels,
            node_channels,
            node_channels,
            num_hidden_layers=mlp_hidden_layers,
            activation=activation,
        )

    def forward(
        self,
        x_src: torch.Tensor,
        x_dst: torch.Tensor,
        edge_index: torch.Tensor,
        edge_features: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        batch = x_src.shape[0]
        source_index, target_index = edge_index[0], edge_index[1]
        if edge_features.dim() == 2:  # sample-independent edges: a view, no copy per sample
            edge_features = edge_features.unsqueeze(0).expand(batch, -1, -1)
        edge_inputs = torch.cat(
            [
                x_src.index_select(1, source_index),
                x_dst.index_select(1, target_index),
                edge_features,
            ],
            dim=-1,
        )
        edge_update = self.edge_mlp(edge_inputs)
        aggregated = sum_at_targets(edge_update, target_index, x_dst.shape[1])
        node_update = self.node_mlp(torch.cat([x_dst, aggregated.to(x_dst.dtype)], dim=-1))
        return x_dst + node_update, edge_features + edge_update


class GraphMapper(nn.Module):
    """Moves information between two node sets (data->hidden encoder, hidden->data decoder).

    The static edge attributes are embedded, one message-passing layer updates the target
    nodes, and with `update_sources` the source nodes get their own residual MLP: the encoder
    uses this so that the data nodes it returns are worth using as skip features in the decoder.
    Returns (x_src_new, x_dst_new); x_src_new is x_src itself when sources are not updated.
    """

    def __init__(
        self,
        node_channels: int,
        edge_attr_channels: int,
        mlp_hidden_layers: int = 1,
        activation: str = "SiLU",
        update_sources: bool = False,
    ) -> None:
        super().__init__()
        self.edge_embedding = MLP(
            edge_attr_channels, node_channels, node_channels, mlp_hidden_layers, activation
        )
        self.message_passing = GraphMessagePassing(
            node_channels, node_channels, mlp_hidden_layers, activation
        )
        self.source_mlp = (
            MLP(node_channels, node_channels, node_channels, mlp_hidden_layers, activation)
            if update_sources
            else None
        )

    def forward(
        self,
        x_src: torch.Tensor,
        x_dst: torch.Tensor,
        edge_index: torch.Tensor,
        edge_attr: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        edge_features = self.edge_embedding(edge_attr)
        x_dst, _ = self.message_passing(x_src, x_dst, edge_index, edge_features)
        if self.source_mlp is not None:
            x_src = x_src + self.source_mlp(x_src)
        return x_src, x_dst


class GraphProcessor(nn.Module):
    """`num_layers` message-passing layers on one node set; edge attributes are embedded once
    and the edge latents are carried (and updated) from layer to layer."""

    def __init__(
        self,
        channels: int,
        edge_attr_channels: int,
        num_layers: int,
        mlp_hidden_layers: int = 1,
        activation: str = "SiLU",
        gradient_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        self.gradient_checkpointing = gradient_checkpointing
        self.edge_embedding = MLP(
            edge_attr_channels, channels, channels, mlp_hidden_layers, activation
        )
        self.layers = nn.ModuleList(
            GraphMessagePassing(channels, channels, mlp_hidden_layers, activation)
            for _ in range(num_layers)
        )

    def forward(
        self, x: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor
    ) -> torch.Tensor:
        edge_features = self.edge_embedding(edge_attr)
        for layer in self.layers:
            if self.gradient_checkpointing and torch.is_grad_enabled():
                # Keeps only each layer's inputs for backward; the edge activations
                # (batch x edges x channels, the bulk of the memory) are recomputed.
                x, edge_features = checkpoint(
                    layer, x, x, edge_index, edge_features, use_reentrant=False
                )
            else:
                x, edge_features = layer(x, x, edge_index, edge_features)
        return x
