"""Interaction-network message passing on batched node features (the GNN block).

Shapes: node features are (batch, nodes, channels); edge features are (edges, channels) when
they do not depend on the sample (embedded static edge attributes) or (batch, edges, channels)
once a layer has updated them. `edge_index` is (2, edges) with row 0 the source node and row 1
the target node. The batch dimension is handled by gathering/scattering along dim 1, so one
kernel call serves the whole batch (and the grid axis stays the one to shard later).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from squall.models.kernels import edge_hidden, fused_kernels_enabled, segment_sum
from squall.models.kernels.edge_hidden import edge_pre_activation, fused_activation_name
from squall.models.layer_kernels import LayerKernels
from squall.models.layers import mlp_hidden_width


def sum_at_targets(
    messages: torch.Tensor, target_index: torch.Tensor, num_targets: int
) -> torch.Tensor:
    """Sum `messages` (batch, edges, channels...) into (batch, num_targets, channels...);
    `target_index` sorted (graph_inputs sorts the edges once, at load).

    Half-precision messages (bf16/fp16 under autocast) are summed in fp32: a high-degree node
    summed in bf16 loses most of the small contributions. On CUDA a fused segment-sum kernel.
    """
    return segment_sum(messages, target_index, num_targets)


def batched_edges(edge_features: torch.Tensor, batch: int) -> torch.Tensor:
    """(E, C) sample-independent edges as a (batch, E, C) view (no copy); (B, E, C) unchanged."""
    if edge_features.dim() == 2:
        return edge_features.unsqueeze(0).expand(batch, -1, -1)
    return edge_features


class GraphMessagePassing(nn.Module):
    """One interaction-network layer (as in GraphCast) from source to target nodes.

    edge_update = edge_mlp([x_src[src], x_dst[dst], e]);   e_new = e + edge_update
    x_dst_new = x_dst + node_mlp([x_dst, sum of edge_update over incoming edges])

    Source and target node sets may be the same (processor: pass the same tensor twice) or
    differ (mappers). Returns (x_dst_new, e_new). With `condition_channels` the output norms of
    both MLPs are conditional layer norms (ensemble noise). The MLPs' hidden layers are
    `mlp_hidden_ratio` times as wide as their outputs.
    """

    def __init__(
        self,
        node_channels: int,
        edge_channels: int,
        mlp_hidden_layers: int = 1,
        kernels: LayerKernels | None = None,
        condition_channels: int = 0,
        mlp_hidden_ratio: float = 1.0,
    ) -> None:
        super().__init__()
        kernels = kernels or LayerKernels()
        common = {"num_hidden_layers": mlp_hidden_layers, "condition_channels": condition_channels}
        self.edge_mlp = kernels.mlp(
            2 * node_channels + edge_channels,
            mlp_hidden_width(edge_channels, mlp_hidden_ratio),
            edge_channels,
            **common,
        )
        self.node_mlp = kernels.mlp(
            node_channels + edge_channels,
            mlp_hidden_width(node_channels, mlp_hidden_ratio),
            node_channels,
            **common,
        )

    def forward(
        self,
        x_src: torch.Tensor,
        x_dst: torch.Tensor,
        edge_index: torch.Tensor,
        edge_features: torch.Tensor,
        condition: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        source_index, target_index = edge_index[0], edge_index[1]
        first = self.edge_mlp.first_linear() if hasattr(self.edge_mlp, "first_linear") else None
        if first is None:
            edge_inputs = torch.cat(
                [
                    x_src.index_select(1, source_index),
                    x_dst.index_select(1, target_index),
                    batched_edges(edge_features, x_src.shape[0]).to(x_src.dtype),
                ],
                dim=-1,
            )
            edge_update = self.edge_mlp(edge_inputs, condition)
        else:
            edge_update = self._edge_mlp_by_parts(
                first, x_src, x_dst, edge_index, edge_features, condition
            )
        aggregated = sum_at_targets(edge_update, target_index, x_dst.shape[1])
        node_inputs = torch.cat([x_dst, aggregated.to(x_dst.dtype)], dim=-1)
        node_update = self.node_mlp(node_inputs, condition)
        return x_dst + node_update, edge_features + edge_update

    def _edge_mlp_by_parts(
        self,
        first: nn.Linear,
        x_src: torch.Tensor,
        x_dst: torch.Tensor,
        edge_index: torch.Tensor,
        edge_features: torch.Tensor,
        condition: torch.Tensor | None,
    ) -> torch.Tensor:
        """edge_mlp([x_src[src], x_dst[dst], e]) with its first layer applied part by part, as
        W_s x_src gathered + W_d x_dst gathered + W_e e: the node parts are multiplied once per
        node instead of once per edge (several times fewer FLOPs on meshes with more edges than
        nodes), and no (edges, 3C) concatenation is built or kept for backward. Same function,
        same parameters as the concatenated form. Where the fused kernels run and the first
        activation is SiLU or GELU, the gathers, adds and activation are one kernel
        (kernels.edge_hidden); elsewhere they are separate PyTorch ops, as before."""
        weight_src, weight_dst, weight_edge = first.weight.split(
            [x_src.shape[-1], x_dst.shape[-1], edge_features.shape[-1]], dim=1
        )
        projected = (
            F.linear(edge_features, weight_edge, first.bias),
            F.linear(x_src, weight_src),
            F.linear(x_dst, weight_dst),
        )
        activation = fused_activation_name(self.edge_mlp.layers[1])
        if activation is not None and fused_kernels_enabled(x_src):
            hidden = edge_hidden(*projected, edge_index, activation)
            return self.edge_mlp.forward_after_first_activation(hidden, condition)
        hidden = edge_pre_activation(*projected, edge_index)
        del projected  # backward needs no node projection here: free them before the MLP's rest
        return self.edge_mlp.forward_after_first_layer(hidden, condition)
