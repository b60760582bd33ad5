"""Triton kernels of layer_norm.py: rows of a (rows, C) tensor, C in one block, ROWS at a time."""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def layer_norm_forward_kernel(
    x, weight, bias, out, mean, rstd, num_rows, channels, eps,
    HAS_BIAS: tl.constexpr, BLOCK: tl.constexpr, ROWS: tl.constexpr,
):  # fmt: skip
    row_ids = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    rows = row_ids[:, None]
    columns = tl.arange(0, BLOCK)[None, :]
    valid = (rows < num_rows) & (columns < channels)
    offsets = rows.to(tl.int64) * channels + columns
    values = tl.load(x + offsets, mask=valid, other=0.0).to(tl.float32)
    row_mean = tl.sum(values, axis=1) / channels
    centred = tl.where(valid, values - row_mean[:, None], 0.0)
    row_rstd = 1.0 / tl.sqrt(tl.sum(centred * centred, axis=1) / channels + eps)
    w = tl.load(weight + columns, mask=columns < channels, other=0.0).to(tl.float32)
    result = centred * row_rstd[:, None] * w
    if HAS_BIAS:
        result += tl.load(bias + columns, mask=columns < channels, other=0.0).to(tl.float32)
    tl.store(out + offsets, result.to(out.dtype.element_ty), mask=valid)
    tl.store(mean + row_ids, row_mean, mask=row_ids < num_rows)
    tl.store(rstd + row_ids, row_rstd, mask=row_ids < num_rows)


@triton.jit
def layer_norm_backward_kernel(
    x, weight, grad_out, mean, rstd, grad_x, partial_grad_weight, partial_grad_bias,
    num_rows, channels,
    HAS_BIAS: tl.constexpr, BLOCK: tl.constexpr, ROWS: tl.constexpr, STEPS: tl.constexpr,
):  # fmt: skip
    """grad_x of STEPS x ROWS consecutive rows; the program's sums of the weight and bias
    gradients over them go to row program_id of the partial buffers (the caller sums those)."""
    program = tl.program_id(0)
    columns = tl.arange(0, BLOCK)[None, :]
    w = tl.load(weight + columns, mask=columns < channels, other=0.0).to(tl.float32)
    sum_weight = tl.zeros([BLOCK], tl.float32)
    sum_bias = tl.zeros([BLOCK], tl.float32)
    for step in range(STEPS):
        row_ids = (program * STEPS + step) * ROWS + tl.arange(0, ROWS)
        rows = row_ids[:, None]
        valid = (rows < num_rows) & (columns < channels)
        offsets = rows.to(tl.int64) * channels + columns
        values = tl.load(x + offsets, mask=valid, other=0.0).to(tl.float32)
        d_out = tl.load(grad_out + offsets, mask=valid, other=0.0).to(tl.float32)
        row_mean = tl.load(mean + row_ids, mask=row_ids < num_rows, other=0.0)
        row_rstd = tl.load(rstd + row_ids, mask=row_ids < num_rows, other=0.0)
        normed = tl.where(valid, (values - row_mean[:, None]) * row_rstd[:, None], 0.0)
        weighted = d_out * w
        mean_weighted = tl.sum(weighted, axis=1) / channels
        mean_weighted_normed = tl.sum(weighted * normed, axis=1) / channels
        d_x = weighted - mean_weighted[:, None] - normed * mean_weighted_normed[:, None]
        d_x = d_x * row_rstd[:, None]
        tl.store(grad_x + offsets, d_x.to(grad_x.dtype.element_ty), mask=valid)
        sum_weight += tl.sum(d_out * normed, axis=0)
        sum_bias += tl.sum(d_out, axis=0)
    partial = program * channels + tl.arange(0, BLOCK)
    column_valid = tl.arange(0, BLOCK) < channels
    tl.store(partial_grad_weight + partial, sum_weight, mask=column_valid)
    if HAS_BIAS:
        tl.store(partial_grad_bias + partial, sum_bias, mask=column_valid)
