"""Triton kernel of segment_sum.py: one program per (target, sample, channel block)."""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def segment_sum_kernel(
    messages,
    offsets,
    out,
    batch_stride,
    row_stride,
    channels,
    num_targets,
    BLOCK: tl.constexpr,
):
    node = tl.program_id(0).to(tl.int64)
    sample = tl.program_id(1).to(tl.int64)
    columns = tl.program_id(2) * BLOCK + tl.arange(0, BLOCK)
    valid = columns < channels
    start = tl.load(offsets + node)
    end = tl.load(offsets + node + 1)
    acc = tl.zeros([BLOCK], tl.float32)
    base = messages + sample * batch_stride + columns
    for edge in range(start, end):
        acc += tl.load(base + edge * row_stride, mask=valid, other=0.0).to(tl.float32)
    tl.store(
        out + (sample * num_targets + node) * channels + columns,
        acc.to(out.dtype.element_ty),
        mask=valid,
    )
