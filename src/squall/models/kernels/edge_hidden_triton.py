"""Triton kernels of edge_hidden.py over target-sorted (CSR) edges, forward and backward.

    out[b, e] = act(edges[b, e] + sources[b, src(e)] + targets[b, dst(e)])

A program walks one target node's contiguous run of edges for one channel block (forward: one
program per sample too; backward: the program loops over the samples); the target row is
loaded once per sample and the sums run in fp32. Forward writes only the activated output.
Backward recomputes the pre-activation (nothing but the three inputs is saved), writes
g = grad_out * act'(pre) as the edges' gradient, sums g over the node's edges in registers for
the target's gradient (no atomics) and adds it into an fp32 per-source buffer with atomics.

`ACTIVATION` codes: 0 SiLU, 1 GELU (exact, erf), 2 GELU with the tanh approximation.

Strides and `channels` arrive divided by ALIGN (the largest power of two up to 16 dividing all
of them) and are multiplied back here: the compiler then knows every row starts on an
ALIGN-element boundary and loads bf16 rows of e.g. 664 channels as 16-byte vectors (Triton's
own launch hints only mark values divisible by 16).
"""

from __future__ import annotations

import triton
import triton.language as tl

# globals a kernel reads must be constexpr (the interpreter accepts plain floats, the compiler not)
_INV_SQRT_2 = tl.constexpr(0.7071067811865476)
_INV_SQRT_2PI = tl.constexpr(0.3989422804014327)
_SQRT_2_OVER_PI = tl.constexpr(0.7978845608028654)
_TANH_CUBIC = tl.constexpr(0.044715)


@triton.jit
def _activate(pre, ACTIVATION: tl.constexpr):
    # one assignment per branch and a single return: a `return` inside a constexpr `if` runs
    # in the interpreter but does not compile (NOTES.md, v4b)
    if ACTIVATION == 0:
        out = pre * tl.sigmoid(pre)
    elif ACTIVATION == 1:
        out = 0.5 * pre * (1.0 + tl.erf(pre * _INV_SQRT_2))
    else:
        # 0.5 (1 + tanh z) = sigmoid(2 z)
        inner = _SQRT_2_OVER_PI * (pre + _TANH_CUBIC * pre * pre * pre)
        out = pre * tl.sigmoid(2.0 * inner)
    return out


@triton.jit
def _activation_slope(pre, ACTIVATION: tl.constexpr):
    """d act / d pre."""
    if ACTIVATION == 0:
        sig = tl.sigmoid(pre)
        slope = sig * (1.0 + pre * (1.0 - sig))
    elif ACTIVATION == 1:
        cdf = 0.5 * (1.0 + tl.erf(pre * _INV_SQRT_2))
        slope = cdf + pre * _INV_SQRT_2PI * tl.exp(-0.5 * pre * pre)
    else:
        inner = _SQRT_2_OVER_PI * (pre + _TANH_CUBIC * pre * pre * pre)
        half_one_plus_tanh = tl.sigmoid(2.0 * inner)
        # d/dz 0.5 (1 + tanh z) = 0.5 (1 - tanh^2 z) = 2 s (1 - s) with s = sigmoid(2 z)
        d_inner = _SQRT_2_OVER_PI * (1.0 + 3.0 * _TANH_CUBIC * pre * pre)
        slope = (
            half_one_plus_tanh
            + pre * 2.0 * half_one_plus_tanh * (1.0 - half_one_plus_tanh) * d_inner
        )
    return slope


@triton.jit
def _sample_rows(
    edges, sources, targets, strides, sample, node, columns, valid, ALIGN: tl.constexpr
):
    """This sample's first edge row and first source row (pointers at this program's columns),
    the target node's row (fp32), and the edge and source row strides in elements."""
    edge_batch, edge_row, source_batch, source_row, target_batch, target_row = strides
    edge_rows = edges + sample * (edge_batch * ALIGN) + columns
    source_rows = sources + sample * (source_batch * ALIGN) + columns
    target = targets + sample * (target_batch * ALIGN) + node * (target_row * ALIGN) + columns
    target_values = tl.load(target, mask=valid, other=0.0).to(tl.float32)
    return edge_rows, source_rows, target_values, (edge_row * ALIGN, source_row * ALIGN)


@triton.jit
def _pre_activation(edge, edge_rows, source_rows, target_values, source_index, valid, row_strides):
    """(source node, fp32 pre-activation) of one edge's channel block."""
    edge_row_stride, source_row_stride = row_strides
    source = tl.load(source_index + edge).to(tl.int64)
    edge_values = tl.load(edge_rows + edge * edge_row_stride, mask=valid, other=0.0)
    source_values = tl.load(source_rows + source * source_row_stride, mask=valid, other=0.0)
    return source, target_values + edge_values.to(tl.float32) + source_values.to(tl.float32)


@triton.jit
def edge_hidden_forward_kernel(
    edges,
    sources,
    targets,
    offsets,
    source_index,
    out,
    edge_batch_stride,
    edge_row_stride,
    source_batch_stride,
    source_row_stride,
    target_batch_stride,
    target_row_stride,
    num_edges,
    channels,
    ACTIVATION: tl.constexpr,
    BLOCK: tl.constexpr,
    ALIGN: tl.constexpr,
):
    """Grid (targets, batch, channel blocks); `out` (batch, edges, channels) contiguous."""
    strides = (edge_batch_stride, edge_row_stride, source_batch_stride, source_row_stride,
               target_batch_stride, target_row_stride)  # fmt: skip
    channels = channels * ALIGN
    node = tl.program_id(0).to(tl.int64)
    sample = tl.program_id(1).to(tl.int64)
    columns = tl.program_id(2) * BLOCK + tl.arange(0, BLOCK)
    valid = columns < channels
    edge_rows, source_rows, target_values, row_strides = _sample_rows(
        edges, sources, targets, strides, sample, node, columns, valid, ALIGN
    )
    out_rows = out + sample * num_edges * channels + columns
    start = tl.load(offsets + node)
    end = tl.load(offsets + node + 1)
    for edge in range(start, end):
        _, pre = _pre_activation(
            edge, edge_rows, source_rows, target_values, source_index, valid, row_strides
        )
        activated = _activate(pre, ACTIVATION)
        tl.store(out_rows + edge * channels, activated.to(out.dtype.element_ty), mask=valid)


@triton.jit
def edge_hidden_backward_kernel(
    edges,
    sources,
    targets,
    offsets,
    source_index,
    grad_out,
    grad_edges,
    grad_sources,
    grad_targets,
    edge_batch_stride,
    edge_row_stride,
    source_batch_stride,
    source_row_stride,
    target_batch_stride,
    target_row_stride,
    batch,
    num_edges,
    num_sources,
    num_targets,
    channels,
    SHARED_EDGES: tl.constexpr,
    ACTIVATION: tl.constexpr,
    BLOCK: tl.constexpr,
    ALIGN: tl.constexpr,
):
    """Grid (targets, channel blocks), each program looping over the samples, so that with
    SHARED_EDGES (one edge tensor for every sample) the edges' gradient sums the batch in place:
    every edge row belongs to one program. grad_out, grad_edges ((1 or batch), edges, channels),
    grad_targets are contiguous; grad_sources (batch, sources, channels) fp32 is accumulated
    into (zero it first)."""
    strides = (edge_batch_stride, edge_row_stride, source_batch_stride, source_row_stride,
               target_batch_stride, target_row_stride)  # fmt: skip
    channels = channels * ALIGN
    node = tl.program_id(0).to(tl.int64)
    columns = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    valid = columns < channels
    start = tl.load(offsets + node)
    end = tl.load(offsets + node + 1)
    first_sample = node * 0  # an int64 loop counter (like `node`), so the offsets stay int64
    for sample in range(first_sample, first_sample + batch):
        edge_rows, source_rows, target_values, row_strides = _sample_rows(
            edges, sources, targets, strides, sample, node, columns, valid, ALIGN
        )
        grad_out_rows = grad_out + sample * num_edges * channels + columns
        grad_source_rows = grad_sources + sample * num_sources * channels + columns
        grad_edge_rows = grad_edges + (0 if SHARED_EDGES else sample * num_edges * channels)
        grad_edge_rows += columns
        grad_target = tl.zeros([BLOCK], tl.float32)
        for edge in range(start, end):
            source, pre = _pre_activation(
                edge, edge_rows, source_rows, target_values, source_index, valid, row_strides
            )
            upstream = tl.load(grad_out_rows + edge * channels, mask=valid, other=0.0)
            grad_pre = upstream.to(tl.float32) * _activation_slope(pre, ACTIVATION)
            grad_target += grad_pre
            tl.atomic_add(grad_source_rows + source * channels, grad_pre, mask=valid, sem="relaxed")
            grad_edge_row = grad_edge_rows + edge * channels
            if SHARED_EDGES:
                # the earlier samples' sum, written by this same program
                earlier = tl.load(grad_edge_row, mask=valid & (sample > 0), other=0.0)
                grad_pre += earlier.to(tl.float32)
            tl.store(grad_edge_row, grad_pre.to(grad_edges.dtype.element_ty), mask=valid)
        tl.store(
            grad_targets + (sample * num_targets + node) * channels + columns,
            grad_target.to(grad_targets.dtype.element_ty),
            mask=valid,
        )
