"""Graph-transformer block: each target node attends over its incoming edges.

For head h:  q_i = W_q LN(x_i),  k_ij = W_k LN(x_j) + W_ek e_ij,  v_ij = W_v LN(x_j) + W_ev e_ij
             a_ij = softmax over the incoming edges j of i of (q_i . k_ij / sqrt(d))
             x_i <- x_i + W_o concat_h(sum_j a_ij v_ij);   x_i <- x_i + MLP(LN(x_i))
Pre-norm residual blocks; edge features enter keys and values, so the attention knows the
geometry of each edge. The softmax is grouped by target with torch_geometric's scatter softmax,
in fp32 under autocast.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch_geometric.utils import softmax as scatter_softmax

from squall.models.layer_kernels import LayerKernels
from squall.models.layers import apply_norm, make_norm
from squall.models.message_passing import batched_edges, sum_at_targets


class GraphTransformerBlock(nn.Module):
    """Same call as GraphMessagePassing: (x_src, x_dst, edge_index, e) -> (x_dst_new, e).
    Edge features are read, not updated."""

    def __init__(
        self,
        node_channels: int,
        edge_channels: int,
        num_heads: int,
        mlp_hidden_layers: int = 1,
        kernels: LayerKernels | None = None,
        condition_channels: int = 0,
    ) -> None:
        super().__init__()
        if node_channels % num_heads:
            raise ValueError(
                f"hidden_channels={node_channels} is not divisible by num_heads={num_heads}; "
                "pick a head count that divides the channels."
            )
        kernels = kernels or LayerKernels()
        self.num_heads, self.head_channels = num_heads, node_channels // num_heads
        self.source_norm = make_norm(node_channels, kernels, condition_channels)
        self.target_norm = make_norm(node_channels, kernels, condition_channels)
        self.query = kernels.linear(node_channels, node_channels)
        self.key_value = kernels.linear(node_channels, 2 * node_channels)
        self.edge_key_value = kernels.linear(edge_channels, 2 * node_channels)
        self.projection = kernels.linear(node_channels, node_channels)
        self.mlp_norm = make_norm(node_channels, kernels, condition_channels)
        self.mlp = kernels.mlp(
            node_channels,
            node_channels * 2,
            node_channels,
            num_hidden_layers=mlp_hidden_layers,
            layer_norm=False,
        )

    def forward(
        self,
        x_src: torch.Tensor,
        x_dst: torch.Tensor,
        edge_index: torch.Tensor,
        edge_features: torch.Tensor,
        condition: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        batch, num_targets, channels = x_dst.shape
        heads, head_channels = self.num_heads, self.head_channels
        source_index, target_index = edge_index[0], edge_index[1]
        source = apply_norm(self.source_norm, x_src, condition)
        target = apply_norm(self.target_norm, x_dst, condition)

        query = self.query(target).index_select(1, target_index)
        key, value = (
            self.key_value(source).index_select(1, source_index)
            + self.edge_key_value(batched_edges(edge_features, batch).to(source.dtype))
        ).chunk(2, dim=-1)
        edges = query.shape[1]
        query = query.reshape(batch, edges, heads, head_channels)
        key = key.reshape(batch, edges, heads, head_channels)
        value = value.reshape(batch, edges, heads, head_channels)

        scores = (query * key).sum(-1).float() / math.sqrt(head_channels)  # (B, E, H)
        weights = scatter_softmax(scores, target_index, num_nodes=num_targets, dim=1)
        messages = weights.unsqueeze(-1).to(value.dtype) * value
        attended = sum_at_targets(messages, target_index, num_targets)
        attended = attended.reshape(batch, num_targets, channels).to(x_dst.dtype)
        x_dst = x_dst + self.projection(attended)
        x_dst = x_dst + self.mlp(apply_norm(self.mlp_norm, x_dst, condition))
        return x_dst, edge_features
