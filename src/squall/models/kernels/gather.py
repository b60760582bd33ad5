"""Gathering node rows onto edges, with a backward suited to the GPU.

index_select's own backward is an index_add in the tensor's dtype: under bf16 autocast that is
bf16 atomics (slow, and lossy on high-degree nodes). Here the backward sums in fp32: for a
sorted index (the targets of target-sorted edges) with the segment-sum kernel (no atomics),
otherwise with an fp32 index_add.
"""

from __future__ import annotations

import torch

from squall.models.kernels.dispatch import fused_kernels_enabled
from squall.models.kernels.segment_sum import segment_sum


class _GatherRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, nodes, index, index_is_sorted):
        ctx.save_for_backward(index)
        ctx.num_nodes, ctx.index_is_sorted = nodes.shape[1], index_is_sorted
        return nodes.index_select(1, index)

    @staticmethod
    def backward(ctx, grad):
        (index,) = ctx.saved_tensors
        if ctx.index_is_sorted:
            summed = segment_sum(grad, index, ctx.num_nodes)
        else:
            shape = (grad.shape[0], ctx.num_nodes, *grad.shape[2:])
            summed = grad.new_zeros(shape, dtype=torch.float32).index_add_(1, index, grad.float())
        return summed.to(grad.dtype), None, None


def gather_rows(
    nodes: torch.Tensor, index: torch.Tensor, index_is_sorted: bool = False
) -> torch.Tensor:
    """nodes (batch, N, C...) -> (batch, len(index), C...): nodes.index_select(1, index)."""
    if not fused_kernels_enabled(nodes) or nodes.element_size() >= 4:
        return nodes.index_select(1, index)
    return _GatherRows.apply(nodes, index, index_is_sorted)
