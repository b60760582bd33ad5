"""Graph attention whose keys and values include a linear projection of the edge features:

    key_ij = K_j + W_ek e_ij + b_ek,   value_ij = V_j + W_ev e_ij + b_ev    (per head h: rows of W)

Projecting every edge (edges x C_e x 2C multiply-adds) is the largest matrix cost of the graph
transformer. The same function needs only node-level products, for each head h:

    q_ih . (W_ek,h e_ij) = (W_ek,h^T q_ih) . e_ij          (a per-node "edge query" qe_ih)
    sum_j a_ijh W_ev,h e_ij = W_ev,h (sum_j a_ijh e_ij)    (a per-node mix of edges ee_ih)
    sum_j a_ijh b_ev,h = b_ev,h (nodes with edges),  q_ih . b_ek,h: a per-node constant

so qe = W_ek^T q and W_ev ee are two (targets x C x C_e) matmuls and the kernels (Triton, in
edge_attention_triton.py) read the raw edge features. Exact, same parameters, 8x fewer matrix
FLOPs in the processor of the anchor problem, but it moves heads x C_e values per target node
(edge queries, edge mixes and their gradients) instead of 2C per edge, and on one H100 it ran
slower there (206 vs 151 ms per step, 16 heads; 211 vs 153 ms at 4 heads;
benchmarks/gpu/NOTES.md, v4). So the edges are projected and `graph_attention` runs, unless
`SQUALL_EDGE_PROJECTION=node` asks for the node-level route on CUDA (nn.Linear projections).
"""

from __future__ import annotations

import math
import os

import torch
from torch import nn

from squall.models.kernels.csr import row_offsets
from squall.models.kernels.dispatch import fused_kernels_enabled
from squall.models.kernels.graph_attention import graph_attention

_BLOCK_E, _BLOCK_K, _BLOCK_N = 16, 64, 64  # edges, reduction and output columns per tile


def edge_attention(
    query: torch.Tensor,
    kv_source: torch.Tensor,
    edge_features: torch.Tensor,
    edge_linear: nn.Module,
    edge_index: torch.Tensor,
    num_heads: int,
) -> torch.Tensor:
    """query (B, Nt, C), kv_source (B, Ns, 2C) = [keys | values], edge_features (E, Ce) or
    (B, E, Ce), edge_linear: Ce -> 2C ([key | value] part of each edge), edge_index (2, E)
    sorted by target -> (B, Nt, C)."""
    if _node_level(edge_linear, query):
        return _node_level_attention(
            query, kv_source, edge_features, edge_linear, edge_index, num_heads
        )
    kv_edge = edge_linear(edge_features)
    if kv_edge.dim() == 2:  # sample-independent edges: one copy serves the batch
        kv_edge = kv_edge.unsqueeze(0)
    return graph_attention(query, kv_source, kv_edge, edge_index, num_heads)


def _node_level(edge_linear: nn.Module, query: torch.Tensor) -> bool:
    """Only on request (SQUALL_EDGE_PROJECTION=node): measured slower on the anchor problem."""
    return (
        os.environ.get("SQUALL_EDGE_PROJECTION", "edge") == "node"
        and type(edge_linear) is nn.Linear
        and fused_kernels_enabled(query)
    )


def _node_level_attention(query, kv_source, edge_features, edge_linear, edge_index, num_heads):
    batch, num_targets, channels = query.shape
    head_channels, edge_channels = channels // num_heads, edge_features.shape[-1]
    dtype = query.dtype
    weight_key, weight_value = edge_linear.weight.to(dtype).split(channels)  # (C, Ce) each
    heads_query = query.reshape(batch * num_targets, num_heads, head_channels).transpose(0, 1)
    # (H, B*Nt, Ce): per head, W_ek,h^T q_ih
    edge_query = torch.matmul(
        heads_query, weight_key.reshape(num_heads, head_channels, edge_channels)
    )
    scale = 1.0 / math.sqrt(head_channels)
    if edge_linear.bias is None:
        score_bias = query.new_zeros(batch, num_targets, num_heads, dtype=torch.float32)
        bias_value = None
    else:
        bias_key, bias_value = edge_linear.bias.split(channels)
        # q_ih . b_ek,h: the same for every edge of i, so it leaves the softmax unchanged; kept
        # so that the function (and b_ek's gradient, exactly zero) is the edge route's
        heads_bias = bias_key.float().reshape(num_heads, head_channels)
        score_bias = (query.float().reshape(batch, num_targets, num_heads, -1) * heads_bias).sum(
            -1
        ) * scale
    edges = edge_features.to(dtype)
    edges = edges.unsqueeze(0) if edges.dim() == 2 else edges
    offsets = row_offsets(edge_index[1], num_targets)
    attended, edge_mix = _NodeLevelAttention.apply(
        query.contiguous(),
        edge_query.contiguous(),
        score_bias.contiguous(),
        kv_source.to(dtype).contiguous(),
        edges.contiguous(),
        offsets,
        edge_index[0].to(torch.int32),
        num_heads,
    )
    heads_value = weight_value.reshape(num_heads, head_channels, edge_channels).transpose(1, 2)
    mixed_values = torch.matmul(edge_mix, heads_value)  # (H, B*Nt, d): W_ev,h sum_j a_ijh e_ij
    attended = attended + mixed_values.transpose(0, 1).reshape(batch, num_targets, channels)
    if bias_value is not None:  # the weights of a target's edges sum to 1 (0 with no edges)
        has_edges = (offsets[1:] > offsets[:-1]).to(dtype).unsqueeze(-1)
        attended = attended + has_edges * bias_value.to(dtype)
    return attended


class _NodeLevelAttention(torch.autograd.Function):
    """(query, edge_query, score_bias, kv_source, edges) -> (attention over the sources'
    values (B, Nt, C), edge_mix (H, B*Nt, Ce)); see edge_attention_triton.py."""

    @staticmethod
    def forward(ctx, query, edge_query, score_bias, kv_source, edges, offsets, sources, num_heads):
        from squall.models.kernels.edge_attention_triton import aggregate_kernel, scores_kernel

        batch, num_targets, channels = query.shape
        num_edges, edge_channels = edges.shape[1], edges.shape[2]
        sizes = _sizes(query, kv_source, edges, num_heads)
        scores = torch.empty(batch, num_edges, num_heads, device=query.device)
        lse = torch.empty(batch, num_targets, num_heads, device=query.device)
        scores_kernel[(num_targets, batch)](
            query, edge_query, score_bias, kv_source, edges, offsets, sources, scores, lse,
            *sizes, 1.0 / math.sqrt(channels // num_heads), **_meta(query, channels, edge_channels,
            num_heads, "BLOCK_K"),
        )  # fmt: skip
        out = torch.empty_like(query)
        edge_mix = torch.empty_like(edge_query)
        aggregate_kernel[(num_targets, batch)](
            edge_mix, out, kv_source, edges, offsets, sources, scores, lse, *sizes,
            **_meta(query, channels, edge_channels, num_heads, "BLOCK_N"),
        )  # fmt: skip
        ctx.save_for_backward(query, edge_query, kv_source, edges, offsets, sources, scores, lse)
        ctx.num_heads = num_heads
        return out, edge_mix

    @staticmethod
    def backward(ctx, grad_out, grad_mix):
        from squall.models.kernels.edge_attention_triton import (
            input_grads_kernel,
            score_grads_kernel,
        )

        query, edge_query, kv_source, edges, offsets, sources, scores, lse = ctx.saved_tensors
        num_heads = ctx.num_heads
        batch, num_targets, channels = query.shape
        num_edges, edge_channels = edges.shape[1], edges.shape[2]
        sizes = _sizes(query, kv_source, edges, num_heads)
        grad_out = _dense(grad_out, query)
        grad_mix = _dense(grad_mix, edge_query)
        grad_scores = torch.empty_like(scores)
        delta = torch.empty_like(lse)
        score_grads_kernel[(num_targets, batch)](
            grad_out, grad_mix, kv_source, edges, offsets, sources, scores, lse, grad_scores,
            delta, *sizes, **_meta(query, channels, edge_channels, num_heads, "BLOCK_K"),
        )  # fmt: skip
        grad_query = torch.empty_like(query)
        grad_edge_query = torch.empty_like(edge_query)
        grad_edges = torch.empty(batch, num_edges, edge_channels, device=query.device,
                                 dtype=edges.dtype)  # fmt: skip
        grad_kv_source = torch.zeros(kv_source.shape, device=query.device, dtype=torch.float32)
        input_grads_kernel[(num_targets, batch)](
            query, edge_query, grad_out, grad_mix, kv_source, edges, offsets, sources, scores,
            lse, grad_scores, delta, grad_query, grad_edge_query, grad_edges, grad_kv_source,
            *sizes, 1.0 / math.sqrt(channels // num_heads),
            **_meta(query, channels, edge_channels, num_heads, "BLOCK_N"),
        )  # fmt: skip
        if edges.shape[0] != batch:  # sample-independent edges: their gradient sums the batch
            grad_edges = grad_edges.sum(0, keepdim=True)
        # the score bias is constant over each target's edges: its gradient is exactly zero
        grad_score_bias = torch.zeros_like(lse)
        return (
            grad_query,
            grad_edge_query,
            grad_score_bias,
            grad_kv_source.to(kv_source.dtype),
            grad_edges,
            None,
            None,
            None,
        )


def _dense(grad: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """An output's gradient as a contiguous tensor (zeros if that output was unused)."""
    return torch.zeros_like(like) if grad is None else grad.contiguous()


def _sizes(query, kv_source, edges, num_heads) -> tuple[int, ...]:
    """num_targets, num_sources, num_edges, edge batch stride, head stride of edge_query."""
    batch, num_targets = query.shape[:2]
    edge_batch_stride = edges.stride(0) if edges.shape[0] > 1 else 0
    head_stride = batch * num_targets * edges.shape[2]
    return num_targets, kv_source.shape[1], edges.shape[1], edge_batch_stride, head_stride


def _meta(query, channels, edge_channels, num_heads, block_name) -> dict:
    columns = {  # kernels that walk the output columns BLOCK_N at a time
        "WIDTH": max(channels, edge_channels),
        "SINGLE_HEAD": (channels // num_heads) % _BLOCK_N == 0,  # each block in one head
    }
    return {
        "CHANNELS": channels,
        "EDGE_CHANNELS": edge_channels,
        "HEADS": num_heads,
        "HEAD_DIM": channels // num_heads,
        "BLOCK_E": _BLOCK_E,
        "BLOCK_H": max(16, 1 << (num_heads - 1).bit_length()),  # tensor-core tiles: >= 16
        block_name: _BLOCK_K if block_name == "BLOCK_K" else _BLOCK_N,
        # fp32/fp64 inputs (tests, autocast off): exact products, not tf32
        "PRECISION": "tf32" if query.element_size() < 4 else "ieee",
        "num_warps": 4,
    } | (columns if block_name == "BLOCK_N" else {})
