"""Multi-head attention of each target node over its incoming edges.

    key_ij = K_j + EK_ij,  value_ij = V_j + EV_ij     ([K | V] = kv_source, [EK | EV] = kv_edge)
    out_i  = sum_j softmax_j(q_i . key_ij / sqrt(d)) value_ij, per head

`graph_attention` runs the fused Triton kernel on CUDA (see graph_attention_triton.py) and the
PyTorch/PyG reference elsewhere; both take and return the same tensors.
"""

from __future__ import annotations

import math

import torch
from torch_geometric.utils import softmax as scatter_softmax

from squall.models.kernels.csr import target_csr
from squall.models.kernels.dispatch import fused_kernels_enabled
from squall.models.kernels.segment_sum import segment_sum_reference


def _check(query, kv_source, kv_edge, edge_index, num_heads) -> None:
    channels = query.shape[-1]
    if channels % num_heads:
        raise ValueError(f"{channels} channels do not split into {num_heads} heads")
    if kv_source.shape[-1] != 2 * channels or kv_edge.shape[-1] != 2 * channels:
        raise ValueError(
            f"kv_source and kv_edge must be [key | value], {2 * channels} wide; got "
            f"{kv_source.shape[-1]} and {kv_edge.shape[-1]}"
        )
    if kv_edge.shape[-2] != edge_index.shape[1] or kv_edge.shape[0] not in (1, query.shape[0]):
        raise ValueError(
            f"kv_edge {tuple(kv_edge.shape)} must be (1 or batch, {edge_index.shape[1]} edges, "
            f"{2 * channels})"
        )


def graph_attention_reference(
    query: torch.Tensor,
    kv_source: torch.Tensor,
    kv_edge: torch.Tensor,
    edge_index: torch.Tensor,
    num_heads: int,
) -> torch.Tensor:
    """query (B, Nt, C), kv_source (B, Ns, 2C), kv_edge (1 or B, E, 2C) -> (B, Nt, C).

    Plain PyTorch: gathers per-edge keys and values, a PyG scatter softmax in fp32, and an fp32
    sum at the targets (returned in fp32 when the inputs are half precision)."""
    _check(query, kv_source, kv_edge, edge_index, num_heads)
    batch, num_targets, channels = query.shape
    head_channels = channels // num_heads
    source_index, target_index = edge_index[0], edge_index[1]
    key, value = (kv_source.index_select(1, source_index) + kv_edge.to(kv_source.dtype)).chunk(
        2, dim=-1
    )
    edges = key.shape[1]
    per_edge_query = query.index_select(1, target_index).reshape(
        batch, edges, num_heads, head_channels
    )
    key = key.reshape(batch, edges, num_heads, head_channels)
    value = value.reshape(batch, edges, num_heads, head_channels)
    scores = (per_edge_query * key).sum(-1).float() / math.sqrt(head_channels)  # (B, E, H)
    weights = scatter_softmax(scores, target_index, num_nodes=num_targets, dim=1)
    messages = weights.unsqueeze(-1).to(value.dtype) * value
    attended = segment_sum_reference(messages, target_index, num_targets)
    return attended.reshape(batch, num_targets, channels)


class _FusedGraphAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, query, kv_source, kv_edge, offsets, sources, num_heads):
        from squall.models.kernels.graph_attention_triton import attention_forward_kernel

        batch, num_targets, channels = query.shape
        head_channels = channels // num_heads
        out = torch.empty_like(query, memory_format=torch.contiguous_format)
        lse = torch.empty(batch, num_targets, num_heads, device=query.device, dtype=torch.float32)
        scale = 1.0 / math.sqrt(head_channels)
        attention_forward_kernel[(num_targets, batch)](
            query, kv_source, kv_edge, offsets, sources, out, lse,
            query.stride(0), query.stride(1), kv_source.stride(0), kv_source.stride(1),
            _batch_stride(kv_edge), kv_edge.stride(1), out.stride(0), out.stride(1),
            num_targets, scale, **_meta(num_heads, head_channels),
        )  # fmt: skip
        ctx.save_for_backward(query, kv_source, kv_edge, offsets, sources, out, lse)
        ctx.num_heads = num_heads
        return out

    @staticmethod
    def backward(ctx, grad_out):
        from squall.models.kernels.graph_attention_triton import attention_backward_kernel

        query, kv_source, kv_edge, offsets, sources, out, lse = ctx.saved_tensors
        batch, num_targets, channels = query.shape
        num_heads = ctx.num_heads
        head_channels = channels // num_heads
        num_edges = sources.shape[0]
        grad_out = grad_out.contiguous()
        grad_query = torch.empty(query.shape, device=query.device, dtype=query.dtype)
        grad_kv_edge = torch.empty(
            batch, num_edges, 2 * channels, device=query.device, dtype=kv_edge.dtype
        )
        grad_kv_source = torch.zeros(kv_source.shape, device=query.device, dtype=torch.float32)
        attention_backward_kernel[(num_targets, batch)](
            query, kv_source, kv_edge, offsets, sources, out, grad_out, lse,
            grad_query, grad_kv_edge, grad_kv_source,
            query.stride(0), query.stride(1), kv_source.stride(0), kv_source.stride(1),
            _batch_stride(kv_edge), kv_edge.stride(1), out.stride(0), out.stride(1), num_targets,
            kv_source.shape[1], num_edges, 1.0 / math.sqrt(head_channels),
            **_meta(num_heads, head_channels),
        )  # fmt: skip
        if kv_edge.shape[0] != batch:  # sample-independent edges: their gradient sums the batch
            grad_kv_edge = grad_kv_edge.sum(0, keepdim=True)
        return grad_query, grad_kv_source.to(kv_source.dtype), grad_kv_edge, None, None, None


def _batch_stride(tensor: torch.Tensor) -> int:
    """0 for a (1, ...) tensor shared by every sample (sample-independent edge features)."""
    return tensor.stride(0) if tensor.shape[0] > 1 else 0


def _meta(num_heads: int, head_channels: int) -> dict[str, int]:
    block_h, block_d = _next_power_of_two(num_heads), _next_power_of_two(head_channels)
    # one fp32 (heads x head_channels) tile per tensor: 8 values a thread at 4 warps for C=1024
    warps = max(1, min(8, block_h * block_d // 256))
    return {
        "HEADS": num_heads,
        "HEAD_DIM": head_channels,
        "BLOCK_H": block_h,
        "BLOCK_D": block_d,
        "num_warps": warps,
    }


def _next_power_of_two(value: int) -> int:
    return 1 << (value - 1).bit_length()


def graph_attention(
    query: torch.Tensor,
    kv_source: torch.Tensor,
    kv_edge: torch.Tensor,
    edge_index: torch.Tensor,
    num_heads: int,
) -> torch.Tensor:
    """query (B, Nt, C), kv_source (B, Ns, 2C), kv_edge (1 or B, E, 2C), edge_index (2, E)
    sorted by target -> (B, Nt, C). The fused kernel returns the query's dtype, the reference
    fp32 for half-precision inputs; both accumulate in fp32."""
    if not fused_kernels_enabled(query):
        return graph_attention_reference(query, kv_source, kv_edge, edge_index, num_heads)
    _check(query, kv_source, kv_edge, edge_index, num_heads)
    dtype = query.dtype
    # the kernel wants unit stride along the channels; [key | value] views keep it
    tensors = [t.to(dtype) for t in (query, kv_source, kv_edge)]
    tensors = [t if t.stride(-1) == 1 else t.contiguous() for t in tensors]
    offsets, sources = target_csr(edge_index, query.shape[1])
    return _FusedGraphAttention.apply(*tensors, offsets, sources, num_heads)
