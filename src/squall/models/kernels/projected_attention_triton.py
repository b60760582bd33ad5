"""Triton kernels of graph attention with the edge projection moved to the target nodes.

The attention of projected_attention.py, per head h of target i over its edges j:

    score_ij = scale * (q_i . K_j + qe_i . e_ij),      qe_i = W_k^T q_i     (d_e per head)
    out_i    = sum_j a_ij V_j,   out_e_i = sum_j a_ij e_ij                  (d_e per head)

so an edge contributes its d_e-wide features e_ij (shared by all heads), never a 2C-wide
projected [key | value] row. qe and out_e are head-major, (H, B * Nt, d_e), as the per-head
matmuls around the kernel make and take them. One program per (target node, sample) walks
the node's CSR edges once with an online softmax, as graph_attention_triton.py does; backward
recomputes the weights from the saved log-sum-exp and writes each edge's d_e-wide gradient
(summed over heads) and its per-head weight and score gradient; a second pass over the source
nodes (their outgoing edges, in an order sorted once per edge set) sums each source's [key |
value] gradient in registers and writes it once: no atomics, no fp32 buffer to zero and cast.
"""

from __future__ import annotations

import triton
import triton.language as tl

from squall.models.kernels.graph_attention_triton import _tile_offsets


@triton.jit
def _head_major_tile(
    row,
    head_stride,
    HEADS: tl.constexpr,
    EDGE_DIM: tl.constexpr,
    BLOCK_H: tl.constexpr,
    BLOCK_E: tl.constexpr,
):
    """Offsets and mask of row `row`'s (heads x d_e) tile in an (H, rows, d_e) tensor."""
    heads = tl.arange(0, BLOCK_H)[:, None].to(tl.int64)
    features = tl.arange(0, BLOCK_E)[None, :]
    offsets = heads * head_stride + row * EDGE_DIM + features
    return offsets, (heads < HEADS) & (features < EDGE_DIM)


@triton.jit
def _scaled_queries(query_row, query_edge, tile, valid, edge_tile, edge_valid, scale):
    """The target's query (heads x head_dim) and its edge query qe (heads x d_e), fp32 and
    scaled (fp32 even where a caller, inductor, passes `scale` as fp64)."""
    q = (tl.load(query_row + tile, mask=valid, other=0.0).to(tl.float32) * scale).to(tl.float32)
    qe = tl.load(query_edge + edge_tile, mask=edge_valid, other=0.0).to(tl.float32) * scale
    return q, qe


@triton.jit
def _edge_operands(
    source_base,
    edge_base,
    sources,
    edge,
    source_row_stride,
    edge_row_stride,
    tile,
    valid,
    feature,
    CHANNELS: tl.constexpr,
    EDGE_DIM: tl.constexpr,
):
    """An edge's source key and value (heads x head_dim) and its features (1 x d_e), fp32."""
    source_row = source_base + tl.load(sources + edge).to(tl.int64) * source_row_stride
    key = tl.load(source_row + tile, mask=valid, other=0.0).to(tl.float32)
    value = tl.load(source_row + CHANNELS + tile, mask=valid, other=0.0).to(tl.float32)
    e = tl.load(
        edge_base + edge * edge_row_stride + feature, mask=feature < EDGE_DIM, other=0.0
    ).to(tl.float32)[None, :]
    return key, value, e


@triton.jit
def projected_attention_forward_kernel(
    query,
    query_edge,
    kv_source,
    edges,
    offsets,
    sources,
    out,
    out_edge,
    lse,
    query_batch_stride,
    query_row_stride,
    source_batch_stride,
    source_row_stride,
    edge_batch_stride,
    edge_row_stride,
    num_targets,
    head_stride,
    scale,
    HEADS: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    EDGE_DIM: tl.constexpr,
    BLOCK_H: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_E: tl.constexpr,
):
    """out (B, Nt, C) and lse are contiguous; query_edge and out_edge are head-major
    (H, B * Nt, d_e), contiguous: head_stride = B * Nt * d_e (what a per-head bmm makes)."""
    node = tl.program_id(0).to(tl.int64)
    sample = tl.program_id(1).to(tl.int64)
    CHANNELS: tl.constexpr = HEADS * HEAD_DIM
    tile, valid = _tile_offsets(HEADS, HEAD_DIM, BLOCK_H, BLOCK_D)
    feature = tl.arange(0, BLOCK_E)
    row = sample * num_targets + node
    edge_tile, edge_valid = _head_major_tile(row, head_stride, HEADS, EDGE_DIM, BLOCK_H, BLOCK_E)
    q_row = query + sample * query_batch_stride + node * query_row_stride
    q, qe = _scaled_queries(q_row, query_edge, tile, valid, edge_tile, edge_valid, scale)
    start = tl.load(offsets + node)
    end = tl.load(offsets + node + 1)
    row_max = tl.full([BLOCK_H], float("-inf"), tl.float32)
    row_sum = tl.zeros([BLOCK_H], tl.float32)
    acc = tl.zeros([BLOCK_H, BLOCK_D], tl.float32)
    acc_edge = tl.zeros([BLOCK_H, BLOCK_E], tl.float32)
    source_base = kv_source + sample * source_batch_stride
    edge_base = edges + sample * edge_batch_stride
    for edge in range(start, end):
        key, value, e = _edge_operands(
            source_base, edge_base, sources, edge, source_row_stride, edge_row_stride, tile,
            valid, feature, CHANNELS, EDGE_DIM,
        )  # fmt: skip
        score = tl.sum(q * key, axis=1) + tl.sum(qe * e, axis=1)
        new_max = tl.maximum(row_max, score)
        rescale = tl.exp(row_max - new_max)
        weight = tl.exp(score - new_max)
        acc = acc * rescale[:, None] + weight[:, None] * value
        acc_edge = acc_edge * rescale[:, None] + weight[:, None] * e
        row_sum = row_sum * rescale + weight
        row_max = new_max
    has_edges = row_sum > 0
    safe_sum = tl.where(has_edges, row_sum, 1.0)
    tl.store(out + row * CHANNELS + tile, (acc / safe_sum[:, None]).to(out.dtype.element_ty), valid)
    tl.store(
        out_edge + edge_tile,
        (acc_edge / safe_sum[:, None]).to(out_edge.dtype.element_ty),
        mask=edge_valid,
    )
    heads = tl.arange(0, BLOCK_H)
    tl.store(
        lse + row * HEADS + heads,
        tl.where(has_edges, row_max + tl.log(safe_sum), 0.0),
        mask=heads < HEADS,
    )


@triton.jit
def projected_attention_backward_kernel(
    query,
    query_edge,
    kv_source,
    edges,
    offsets,
    sources,
    out,
    out_edge,
    grad_out,
    grad_out_edge,
    lse,
    grad_query,
    grad_query_edge,
    grad_edges,
    edge_weights,
    edge_score_grads,
    query_batch_stride,
    query_row_stride,
    source_batch_stride,
    source_row_stride,
    edge_batch_stride,
    edge_row_stride,
    num_targets,
    num_edges,
    head_stride,
    scale,
    HEADS: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    EDGE_DIM: tl.constexpr,
    BLOCK_H: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_E: tl.constexpr,
):
    """Pass 1 of 2, over the target nodes: grad_query (B, Nt, C) and grad_edges (B, E, d_e)
    written contiguously, grad_query_edge head-major like query_edge; each edge's softmax weight
    and score gradient, (B, E, H) fp32, for pass 2 (the sources' gradient, no atomics). out and
    grad_out are contiguous, out_edge and grad_out_edge head-major."""
    node = tl.program_id(0).to(tl.int64)
    sample = tl.program_id(1).to(tl.int64)
    CHANNELS: tl.constexpr = HEADS * HEAD_DIM
    tile, valid = _tile_offsets(HEADS, HEAD_DIM, BLOCK_H, BLOCK_D)
    feature = tl.arange(0, BLOCK_E)
    row = sample * num_targets + node
    edge_tile, edge_valid = _head_major_tile(row, head_stride, HEADS, EDGE_DIM, BLOCK_H, BLOCK_E)
    q_row = query + sample * query_batch_stride + node * query_row_stride
    q, qe = _scaled_queries(q_row, query_edge, tile, valid, edge_tile, edge_valid, scale)
    d_out = tl.load(grad_out + row * CHANNELS + tile, mask=valid, other=0.0).to(tl.float32)
    o = tl.load(out + row * CHANNELS + tile, mask=valid, other=0.0).to(tl.float32)
    d_out_e = tl.load(grad_out_edge + edge_tile, mask=edge_valid, other=0.0).to(tl.float32)
    o_e = tl.load(out_edge + edge_tile, mask=edge_valid, other=0.0).to(tl.float32)
    delta = tl.sum(d_out * o, axis=1) + tl.sum(d_out_e * o_e, axis=1)
    heads = tl.arange(0, BLOCK_H)
    log_sum = tl.load(lse + row * HEADS + heads, mask=heads < HEADS, other=0.0)
    d_q = tl.zeros([BLOCK_H, BLOCK_D], tl.float32)
    d_qe = tl.zeros([BLOCK_H, BLOCK_E], tl.float32)
    start = tl.load(offsets + node)
    end = tl.load(offsets + node + 1)
    source_base = kv_source + sample * source_batch_stride
    edge_base = edges + sample * edge_batch_stride
    grad_edge_base = grad_edges + sample * num_edges * EDGE_DIM
    per_edge_base = sample * num_edges * HEADS
    for edge in range(start, end):
        key, value, e = _edge_operands(
            source_base, edge_base, sources, edge, source_row_stride, edge_row_stride, tile,
            valid, feature, CHANNELS, EDGE_DIM,
        )  # fmt: skip
        weight = tl.exp(tl.sum(q * key, axis=1) + tl.sum(qe * e, axis=1) - log_sum)
        d_score = weight * (tl.sum(d_out * value, axis=1) + tl.sum(d_out_e * e, axis=1) - delta)
        d_q += d_score[:, None] * key
        d_qe += d_score[:, None] * e
        d_e = tl.sum(d_score[:, None] * qe + weight[:, None] * d_out_e, axis=0)
        tl.store(
            grad_edge_base + edge * EDGE_DIM + feature,
            d_e.to(grad_edges.dtype.element_ty),
            mask=feature < EDGE_DIM,
        )
        per_edge = per_edge_base + edge * HEADS + heads
        tl.store(edge_weights + per_edge, weight, mask=heads < HEADS)
        tl.store(edge_score_grads + per_edge, d_score, mask=heads < HEADS)
    tl.store(
        grad_query + row * CHANNELS + tile,
        (d_q * scale).to(tl.float32).to(grad_query.dtype.element_ty),
        mask=valid,
    )
    tl.store(
        grad_query_edge + edge_tile,
        (d_qe * scale).to(tl.float32).to(grad_query_edge.dtype.element_ty),
        mask=edge_valid,
    )


@triton.jit
def projected_attention_source_grad_kernel(
    query,
    grad_out,
    edge_weights,
    edge_score_grads,
    source_offsets,
    source_order,
    targets,
    grad_kv_source,
    query_batch_stride,
    query_row_stride,
    num_targets,
    num_sources,
    num_edges,
    scale,
    HEADS: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    BLOCK_H: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """Pass 2 of 2, one program per (source node, sample) over its outgoing edges (the edges'
    ids in source order): d K_j = sum_i dscore_ij q_i, d V_j = sum_i a_ij d out_i, summed in
    registers and written once in grad_kv_source's dtype (B, Ns, 2C), contiguous."""
    source = tl.program_id(0).to(tl.int64)
    sample = tl.program_id(1).to(tl.int64)
    CHANNELS: tl.constexpr = HEADS * HEAD_DIM
    tile, valid = _tile_offsets(HEADS, HEAD_DIM, BLOCK_H, BLOCK_D)
    heads = tl.arange(0, BLOCK_H)
    start = tl.load(source_offsets + source)
    end = tl.load(source_offsets + source + 1)
    d_key = tl.zeros([BLOCK_H, BLOCK_D], tl.float32)
    d_value = tl.zeros([BLOCK_H, BLOCK_D], tl.float32)
    query_base = query + sample * query_batch_stride
    grad_out_base = grad_out + sample * num_targets * CHANNELS
    per_edge_base = sample * num_edges * HEADS
    for position in range(start, end):
        edge = tl.load(source_order + position).to(tl.int64)
        target = tl.load(targets + edge).to(tl.int64)
        per_edge = per_edge_base + edge * HEADS + heads
        weight = tl.load(edge_weights + per_edge, mask=heads < HEADS, other=0.0)
        d_score = tl.load(edge_score_grads + per_edge, mask=heads < HEADS, other=0.0)
        q = tl.load(query_base + target * query_row_stride + tile, mask=valid, other=0.0)
        d_out = tl.load(grad_out_base + target * CHANNELS + tile, mask=valid, other=0.0)
        d_key += d_score[:, None] * q.to(tl.float32)
        d_value += weight[:, None] * d_out.to(tl.float32)
    row = grad_kv_source + (sample * num_sources + source) * 2 * CHANNELS
    tl.store(row + tile, (d_key * scale).to(grad_kv_source.dtype.element_ty), mask=valid)
    tl.store(row + CHANNELS + tile, d_value.to(grad_kv_source.dtype.element_ty), mask=valid)
