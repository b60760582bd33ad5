"""Triton kernels of graph attention over target-sorted (CSR) edges, forward and backward.

One program per (target node, sample) handles all heads: it walks the node's incoming edges
once with an online softmax, so the per-edge keys, values, scores and messages never exist in
device memory (the PyTorch reference materialises each of them). Keys and values of an edge are
the source node's row of `kv_source` plus the edge's row of `kv_edge` ([key | value], 2C wide),
read as 16-byte vectors; everything accumulates in fp32.

Backward recomputes each score from the saved log-sum-exp (flash-attention style) and writes
the gradient of every edge's [key | value] row; the source nodes' gradient is the same row
added (fp32 atomics) into a per-source-node buffer, so no per-edge fp32 copy is made.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _tile_offsets(
    HEADS: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_D: tl.constexpr
):
    heads = tl.arange(0, BLOCK_H)[:, None]
    dims = tl.arange(0, BLOCK_D)[None, :]
    return heads * HEAD_DIM + dims, (heads < HEADS) & (dims < HEAD_DIM)


@triton.jit
def attention_forward_kernel(
    query,
    kv_source,
    kv_edge,
    offsets,
    sources,
    out,
    lse,
    query_batch_stride,
    query_row_stride,
    source_batch_stride,
    source_row_stride,
    edge_batch_stride,
    edge_row_stride,
    out_batch_stride,
    out_row_stride,
    num_targets,
    scale,
    HEADS: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    BLOCK_H: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    node = tl.program_id(0).to(tl.int64)
    sample = tl.program_id(1).to(tl.int64)
    CHANNELS: tl.constexpr = HEADS * HEAD_DIM
    tile, valid = _tile_offsets(HEADS, HEAD_DIM, BLOCK_H, BLOCK_D)
    q = (
        tl.load(
            query + sample * query_batch_stride + node * query_row_stride + tile,
            mask=valid,
            other=0.0,
        ).to(tl.float32)
        * scale
    ).to(tl.float32)  # fp32 even where a caller (inductor) passes `scale` as fp64
    start = tl.load(offsets + node)
    end = tl.load(offsets + node + 1)
    row_max = tl.full([BLOCK_H], float("-inf"), tl.float32)
    row_sum = tl.zeros([BLOCK_H], tl.float32)
    acc = tl.zeros([BLOCK_H, BLOCK_D], tl.float32)
    source_base = kv_source + sample * source_batch_stride
    edge_base = kv_edge + sample * edge_batch_stride
    for edge in range(start, end):
        source_row = source_base + tl.load(sources + edge).to(tl.int64) * source_row_stride
        edge_row = edge_base + edge * edge_row_stride
        key = tl.load(source_row + tile, mask=valid, other=0.0).to(tl.float32) + tl.load(
            edge_row + tile, mask=valid, other=0.0
        ).to(tl.float32)
        value = tl.load(source_row + CHANNELS + tile, mask=valid, other=0.0).to(
            tl.float32
        ) + tl.load(edge_row + CHANNELS + tile, mask=valid, other=0.0).to(tl.float32)
        score = tl.sum(q * key, axis=1)
        new_max = tl.maximum(row_max, score)
        rescale = tl.exp(row_max - new_max)
        weight = tl.exp(score - new_max)
        acc = acc * rescale[:, None] + weight[:, None] * value
        row_sum = row_sum * rescale + weight
        row_max = new_max
    has_edges = row_sum > 0
    safe_sum = tl.where(has_edges, row_sum, 1.0)
    result = acc / safe_sum[:, None]
    tl.store(
        out + sample * out_batch_stride + node * out_row_stride + tile,
        result.to(out.dtype.element_ty),
        mask=valid,
    )
    heads = tl.arange(0, BLOCK_H)
    tl.store(
        lse + (sample * num_targets + node) * HEADS + heads,
        tl.where(has_edges, row_max + tl.log(safe_sum), 0.0),
        mask=heads < HEADS,
    )


@triton.jit
def attention_backward_kernel(
    query,
    kv_source,
    kv_edge,
    offsets,
    sources,
    out,
    grad_out,
    lse,
    grad_query,
    grad_kv_edge,
    grad_kv_source,
    query_batch_stride,
    query_row_stride,
    source_batch_stride,
    source_row_stride,
    edge_batch_stride,
    edge_row_stride,
    out_batch_stride,
    out_row_stride,
    num_targets,
    num_sources,
    num_edges,
    scale,
    HEADS: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    BLOCK_H: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """grad_query (B, Nt, C) and grad_kv_edge (B, E, 2C) are written contiguously;
    grad_kv_source (B, Ns, 2C) fp32 is accumulated into (zero it first)."""
    node = tl.program_id(0).to(tl.int64)
    sample = tl.program_id(1).to(tl.int64)
    CHANNELS: tl.constexpr = HEADS * HEAD_DIM
    tile, valid = _tile_offsets(HEADS, HEAD_DIM, BLOCK_H, BLOCK_D)
    q = (
        tl.load(
            query + sample * query_batch_stride + node * query_row_stride + tile,
            mask=valid,
            other=0.0,
        ).to(tl.float32)
        * scale
    ).to(tl.float32)  # fp32 even where a caller (inductor) passes `scale` as fp64
    out_row = sample * out_batch_stride + node * out_row_stride + tile
    d_out = tl.load(grad_out + out_row, mask=valid, other=0.0).to(tl.float32)
    o = tl.load(out + out_row, mask=valid, other=0.0).to(tl.float32)
    delta = tl.sum(d_out * o, axis=1)
    heads = tl.arange(0, BLOCK_H)
    log_sum = tl.load(
        lse + (sample * num_targets + node) * HEADS + heads, mask=heads < HEADS, other=0.0
    )
    d_q = tl.zeros([BLOCK_H, BLOCK_D], tl.float32)
    start = tl.load(offsets + node)
    end = tl.load(offsets + node + 1)
    source_base = kv_source + sample * source_batch_stride
    edge_base = kv_edge + sample * edge_batch_stride
    grad_edge_base = grad_kv_edge + sample * num_edges * 2 * CHANNELS
    grad_source_base = grad_kv_source + sample * num_sources * 2 * CHANNELS
    for edge in range(start, end):
        source = tl.load(sources + edge).to(tl.int64)
        source_row = source_base + source * source_row_stride
        edge_row = edge_base + edge * edge_row_stride
        key = tl.load(source_row + tile, mask=valid, other=0.0).to(tl.float32) + tl.load(
            edge_row + tile, mask=valid, other=0.0
        ).to(tl.float32)
        value = tl.load(source_row + CHANNELS + tile, mask=valid, other=0.0).to(
            tl.float32
        ) + tl.load(edge_row + CHANNELS + tile, mask=valid, other=0.0).to(tl.float32)
        weight = tl.exp(tl.sum(q * key, axis=1) - log_sum)
        d_score = weight * (tl.sum(d_out * value, axis=1) - delta)
        d_q += d_score[:, None] * key
        d_key = d_score[:, None] * q
        d_value = weight[:, None] * d_out
        grad_edge_row = grad_edge_base + edge * 2 * CHANNELS
        tl.store(grad_edge_row + tile, d_key.to(grad_kv_edge.dtype.element_ty), mask=valid)
        tl.store(
            grad_edge_row + CHANNELS + tile, d_value.to(grad_kv_edge.dtype.element_ty), mask=valid
        )
        grad_source_row = grad_source_base + source * 2 * CHANNELS
        tl.atomic_add(grad_source_row + tile, d_key, mask=valid, sem="relaxed")
        tl.atomic_add(grad_source_row + CHANNELS + tile, d_value, mask=valid, sem="relaxed")
    tl.store(
        grad_query + (sample * num_targets + node) * CHANNELS + tile,
        (d_q * scale).to(tl.float32).to(grad_query.dtype.element_ty),
        mask=valid,
    )
