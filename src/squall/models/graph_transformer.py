"""Graph-transformer block: each target node attends over its incoming edges.

For head h:  q_i = W_q LN(x_i),  k_ij = W_k LN(x_j) + W_ek e_ij,  v_ij = W_v LN(x_j) + W_ev e_ij
             a_ij = softmax over the incoming edges j of i of (q_i . k_ij / sqrt(d))
             x_i <- x_i + W_o concat_h(sum_j a_ij v_ij);   x_i <- x_i + MLP(LN(x_i))
Pre-norm residual blocks; edge features enter keys and values, so the attention knows the
geometry of each edge. The edge projection [W_ek; W_ev] has no bias (one on keys cancels in
the softmax, one on values adds to the sources' value bias). The attention itself is
kernels.graph_attention_over_edge_features: a fused Triton kernel over the target-sorted edges
on CUDA (narrow edge latents: with the edge projection moved to the target nodes),
torch_geometric's scatter softmax (fp32) elsewhere; the three norms feeding linear layers are
fused with their half-precision cast on CUDA.
"""

from __future__ import annotations

import torch
from torch import nn

from squall.models.kernels import graph_attention_over_edge_features, norm_for_matmul
from squall.models.layer_kernels import LayerKernels
from squall.models.layers import apply_norm, make_norm, mlp_hidden_width


class GraphTransformerBlock(nn.Module):
    """Same call as GraphMessagePassing: (x_src, x_dst, edge_index, e) -> (x_dst_new, e).
    Edge features are read, not updated. A mapper that runs the block over several target
    chunks projects its sources once (`project_sources`) and calls `attend` per chunk.

    `mlp_hidden_ratio`: width of the MLP's hidden layers as a multiple of the channels.
    """

    def __init__(
        self,
        node_channels: int,
        edge_channels: int,
        num_heads: int,
        mlp_hidden_layers: int = 1,
        kernels: LayerKernels | None = None,
        condition_channels: int = 0,
        mlp_hidden_ratio: float = 2.0,
    ) -> None:
        super().__init__()
        if node_channels % num_heads:
            raise ValueError(
                f"hidden_channels={node_channels} is not divisible by num_heads={num_heads}; "
                "pick a head count that divides the channels."
            )
        kernels = kernels or LayerKernels()
        self.num_heads = num_heads
        self.source_norm = make_norm(node_channels, kernels, condition_channels)
        self.target_norm = make_norm(node_channels, kernels, condition_channels)
        self.query = kernels.linear(node_channels, node_channels)
        self.key_value = kernels.linear(node_channels, 2 * node_channels)
        self.edge_key_value = kernels.linear(edge_channels, 2 * node_channels, bias=False)
        self.projection = kernels.linear(node_channels, node_channels)
        self.mlp_norm = make_norm(node_channels, kernels, condition_channels)
        self.mlp = kernels.mlp(
            node_channels,
            mlp_hidden_width(node_channels, mlp_hidden_ratio),
            node_channels,
            num_hidden_layers=mlp_hidden_layers,
            layer_norm=False,
        )

    def project_sources(
        self, x_src: torch.Tensor, condition: torch.Tensor | None = None
    ) -> torch.Tensor:
        """[keys | values] of the source nodes, (batch, sources, 2C)."""
        return self.key_value(_norm_for_matmul(self.source_norm, x_src, condition))

    def attend(
        self,
        kv_source: torch.Tensor,
        x_dst: torch.Tensor,
        edge_index: torch.Tensor,
        edge_features: torch.Tensor,
        condition: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x_dst updated from the projected sources over the edges (attention, then MLP)."""
        target = _norm_for_matmul(self.target_norm, x_dst, condition)
        attended = graph_attention_over_edge_features(
            self.query(target),
            kv_source,
            edge_features,
            self.edge_key_value.weight,
            edge_index,
            self.num_heads,
        )
        x_dst = x_dst + self.projection(attended)
        return x_dst + self.mlp(_norm_for_matmul(self.mlp_norm, x_dst, condition))

    def forward(
        self,
        x_src: torch.Tensor,
        x_dst: torch.Tensor,
        edge_index: torch.Tensor,
        edge_features: torch.Tensor,
        condition: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        kv_source = self.project_sources(x_src, condition)
        return self.attend(kv_source, x_dst, edge_index, edge_features, condition), edge_features

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints from before the edge projection lost its bias: that bias only ever added
        # to the sources' [key | value] bias, so folding it in keeps the function exactly
        old_bias = state_dict.pop(prefix + "edge_key_value.bias", None)
        source_bias = prefix + "key_value.bias"
        if old_bias is not None and source_bias in state_dict:
            state_dict[source_bias] = state_dict[source_bias] + old_bias
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def _norm_for_matmul(norm: nn.Module, x: torch.Tensor, condition: torch.Tensor | None):
    """The norm of x that a linear layer consumes next: fused into one half-precision pass
    on CUDA under autocast (kernels.norm_for_matmul), the module itself otherwise."""
    fused = norm_for_matmul(norm, x)
    return apply_norm(norm, x, condition) if fused is None else fused
