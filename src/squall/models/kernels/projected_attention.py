"""Graph attention over raw edge features, their projection moved to the target nodes.

The graph transformer's keys and values are K_j + W_k e_ij and V_j + W_v e_ij, with e_ij the
edge's d_e-wide latent and W = [W_k; W_v] its (2C, d_e) projection (no bias: a bias on keys
cancels in the softmax, one on values adds to the sources' value bias). Per head h the edge
terms factor through the target node:

    q_i . W_k e_ij = (W_k^T q_i) . e_ij,     sum_j a_ij W_v e_ij = W_v (sum_j a_ij e_ij)

so the kernel reads each edge's d_e features (shared by all heads) and two small node-level
matmuls do the projection: no edges x 2C [key | value] tensor is ever written, read or
differentiated (benchmarks/gpu/NOTES.md v8). Worth it where a head's share of the edge work,
d_e, is small beside 2C per edge: `takes_projected_route` decides.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from squall.models.kernels.csr import source_csr, target_csr
from squall.models.kernels.dispatch import fused_kernels_enabled
from squall.models.kernels.graph_attention import (
    _batch_stride,
    _meta,
    _next_power_of_two,
    graph_attention,
)


def takes_projected_route(query: torch.Tensor, edge_channels: int, num_heads: int) -> bool:
    """Fused kernels on, and a head's d_e-wide edge tile no bigger than its key and value."""
    head_channels = query.shape[-1] // num_heads
    return fused_kernels_enabled(query) and edge_channels <= 2 * head_channels


class _ProjectedEdgeAttention(torch.autograd.Function):
    """(query, query_edge, kv_source, edges) -> (out, out_edge); query_edge and out_edge are
    head-major (H, B * Nt, d_e), the layout of a per-head bmm: no permuting copies."""

    @staticmethod
    def forward(ctx, query, query_edge, kv_source, edges, csr, num_heads):
        from squall.models.kernels.projected_attention_triton import (
            projected_attention_forward_kernel,
        )

        batch, num_targets, channels = query.shape
        head_channels = channels // num_heads
        out = torch.empty(query.shape, device=query.device, dtype=query.dtype)
        out_edge = torch.empty(query_edge.shape, device=query.device, dtype=query.dtype)
        lse = torch.empty(batch, num_targets, num_heads, device=query.device, dtype=torch.float32)
        meta = _meta_with_edges(num_heads, head_channels, edges.shape[-1])
        offsets, sources = csr[:2]
        projected_attention_forward_kernel[(num_targets, batch)](
            query, query_edge, kv_source, edges, offsets, sources, out, out_edge, lse,
            query.stride(0), query.stride(1), kv_source.stride(0), kv_source.stride(1),
            _batch_stride(edges), edges.stride(1), num_targets, query_edge.stride(0),
            1.0 / math.sqrt(head_channels), **meta,
        )  # fmt: skip
        ctx.save_for_backward(query, query_edge, kv_source, edges, *csr, out, out_edge, lse)
        ctx.meta = meta
        return out, out_edge

    @staticmethod
    def backward(ctx, grad_out, grad_out_edge):
        from squall.models.kernels.projected_attention_triton import (
            projected_attention_backward_kernel,
            projected_attention_source_grad_kernel,
        )

        query, query_edge, kv_source, edges, *csr, out, out_edge, lse = ctx.saved_tensors
        offsets, sources, source_offsets, source_order, targets = csr
        batch, num_targets, channels = query.shape
        num_sources = kv_source.shape[1]
        num_edges, edge_channels = edges.shape[-2:]
        meta, device = ctx.meta, query.device
        scale = 1.0 / math.sqrt(channels // meta["HEADS"])
        grad_out = grad_out.contiguous()
        grad_query = torch.empty(query.shape, device=device, dtype=query.dtype)
        grad_query_edge = torch.empty(query_edge.shape, device=device, dtype=query_edge.dtype)
        grad_edges = torch.empty(batch, num_edges, edge_channels, device=device, dtype=edges.dtype)
        per_edge = torch.empty(2, batch, num_edges, meta["HEADS"], device=device)
        projected_attention_backward_kernel[(num_targets, batch)](
            query, query_edge, kv_source, edges, offsets, sources, out, out_edge,
            grad_out, grad_out_edge.contiguous(), lse,
            grad_query, grad_query_edge, grad_edges, per_edge[0], per_edge[1],
            query.stride(0), query.stride(1), kv_source.stride(0), kv_source.stride(1),
            _batch_stride(edges), edges.stride(1), num_targets, num_edges,
            query_edge.stride(0), scale, **meta,
        )  # fmt: skip
        grad_kv_source = torch.empty(kv_source.shape, device=device, dtype=kv_source.dtype)
        source_meta = {k: meta[k] for k in ("HEADS", "HEAD_DIM", "BLOCK_H", "BLOCK_D")}
        projected_attention_source_grad_kernel[(num_sources, batch)](
            query, grad_out, per_edge[0], per_edge[1], source_offsets, source_order, targets,
            grad_kv_source, query.stride(0), query.stride(1), num_targets, num_sources,
            num_edges, scale, **source_meta, num_warps=meta["num_warps"],
        )  # fmt: skip
        if edges.shape[0] != batch:  # sample-independent edges: their gradient sums the batch
            grad_edges = grad_edges.sum(0, keepdim=True)
        return grad_query, grad_query_edge, grad_kv_source, grad_edges, None, None


def _meta_with_edges(num_heads: int, head_channels: int, edge_channels: int) -> dict[str, int]:
    meta = _meta(num_heads, head_channels)
    block_e = _next_power_of_two(edge_channels)
    # as _meta: about 8 fp32 values a thread for each (heads x width) tile
    warps = max(1, min(8, meta["BLOCK_H"] * max(meta["BLOCK_D"], block_e) // 256))
    return meta | {"EDGE_DIM": edge_channels, "BLOCK_E": block_e, "num_warps": warps}


def graph_attention_over_edge_features(
    query: torch.Tensor,
    kv_source: torch.Tensor,
    edge_features: torch.Tensor,
    edge_weight: torch.Tensor,
    edge_index: torch.Tensor,
    num_heads: int,
) -> torch.Tensor:
    """query (B, Nt, C), kv_source (B, Ns, 2C), edge_features (E, d_e) or (1 or B, E, d_e),
    edge_weight (2C, d_e): the [key | value] projection of the edges, edge_index (2, E) sorted
    by target -> (B, Nt, C). The same function as graph_attention with
    kv_edge = edge_features @ edge_weight.T; where `takes_projected_route` the projection
    runs at the target nodes instead of on every edge."""
    channels = query.shape[-1]
    edge_channels = edge_features.shape[-1]
    if edge_weight.shape != (2 * channels, edge_channels):
        raise ValueError(
            f"edge_weight must be (2C, d_e) = ({2 * channels}, {edge_channels}), got "
            f"{tuple(edge_weight.shape)}"
        )
    if edge_features.dim() == 2:  # sample-independent edges: one copy serves the batch
        edge_features = edge_features.unsqueeze(0)
    if not takes_projected_route(query, edge_channels, num_heads):
        return graph_attention(
            query, kv_source, F.linear(edge_features, edge_weight), edge_index, num_heads
        )
    if kv_source.shape[-1] != 2 * channels or channels % num_heads:
        raise ValueError(
            f"kv_source must be [key | value], {2 * channels} wide, and {channels} channels "
            f"must split into {num_heads} heads; got {kv_source.shape[-1]} wide"
        )
    batch, num_targets, _ = query.shape
    head_channels = channels // num_heads
    key_weight, value_weight = edge_weight.view(2, num_heads, head_channels, edge_channels)
    # per head, (B * Nt, D) rows of the query against (D, d_e): one strided bmm, head-major
    # output; under autocast it runs in half precision, like a Linear
    per_head_query = query.reshape(batch * num_targets, num_heads, head_channels).transpose(0, 1)
    query_edge = torch.bmm(per_head_query, key_weight)
    dtype = query.dtype
    tensors = [t.to(dtype) for t in (query, query_edge, kv_source, edge_features)]
    tensors = [t if t.stride(-1) == 1 else t.contiguous() for t in tensors]
    tensors[1] = tensors[1].contiguous()  # the kernel indexes it as (H, B * Nt, d_e)
    csr = (*target_csr(edge_index, num_targets), *source_csr(edge_index, kv_source.shape[1]))
    attended, attended_edge = _ProjectedEdgeAttention.apply(*tensors, csr, num_heads)
    projected = torch.bmm(attended_edge, value_weight.transpose(1, 2))  # (H, B * Nt, D)
    attended = attended.view(batch * num_targets, num_heads, head_channels)
    return (attended + projected.transpose(0, 1).to(attended.dtype)).reshape(batch, num_targets, -1)
