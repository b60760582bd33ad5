"""Sum of edge messages at their target nodes (edges sorted by target).

The reference is an fp32 index_add (half-precision messages summed in bf16 would lose the small
contributions of high-degree nodes). The fused kernel reads each message once, sums every
target's contiguous run of edges in registers (fp32) and writes each target once: no atomics,
no fp32 copy of the messages, deterministic. Its backward is a gather (index_select).
"""

from __future__ import annotations

import math

import torch

from squall.models.kernels.csr import row_offsets
from squall.models.kernels.dispatch import fused_kernels_enabled


def segment_sum_reference(
    messages: torch.Tensor, target_index: torch.Tensor, num_targets: int
) -> torch.Tensor:
    """(batch, edges, channels...) -> (batch, num_targets, channels...), fp32 for half inputs."""
    accumulate_dtype = torch.float32 if messages.element_size() < 4 else messages.dtype
    shape = (messages.shape[0], num_targets, *messages.shape[2:])
    accumulator = messages.new_zeros(shape, dtype=accumulate_dtype)
    return accumulator.index_add(1, target_index, messages.to(accumulate_dtype))


class _FusedSegmentSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, messages, offsets, target_index):
        from squall.models.kernels.segment_sum_triton import segment_sum_kernel

        batch, _, channels = messages.shape
        num_targets = offsets.shape[0] - 1
        accumulate_dtype = torch.float32 if messages.element_size() < 4 else messages.dtype
        out = torch.empty(
            batch, num_targets, channels, device=messages.device, dtype=accumulate_dtype
        )
        block = min(1024, 1 << (channels - 1).bit_length())
        grid = (num_targets, batch, (channels + block - 1) // block)
        segment_sum_kernel[grid](
            messages, offsets, out, messages.stride(0), messages.stride(1), channels, num_targets,
            BLOCK=block, num_warps=max(1, min(4, block // 256)),
        )  # fmt: skip
        ctx.save_for_backward(target_index)
        ctx.message_dtype = messages.dtype
        return out

    @staticmethod
    def backward(ctx, grad_out):
        (target_index,) = ctx.saved_tensors
        return grad_out.index_select(1, target_index).to(ctx.message_dtype), None, None


def segment_sum(
    messages: torch.Tensor, target_index: torch.Tensor, num_targets: int
) -> torch.Tensor:
    """Sum `messages` (batch, edges, channels...) into (batch, num_targets, channels...);
    `target_index` sorted. fp32 result for half-precision messages."""
    if not fused_kernels_enabled(messages):
        return segment_sum_reference(messages, target_index, num_targets)
    batch, edges = messages.shape[:2]
    # channels named, not -1: a mapper chunk may have no edges, and -1 cannot be inferred then
    flat = messages.reshape(batch, edges, math.prod(messages.shape[2:]))
    if flat.stride(-1) != 1:
        flat = flat.contiguous()
    offsets = row_offsets(target_index, num_targets)
    out = _FusedSegmentSum.apply(flat, offsets, target_index)
    return out.reshape(batch, num_targets, *messages.shape[2:])
