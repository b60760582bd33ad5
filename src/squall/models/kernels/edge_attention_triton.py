"""Triton kernels of edge_attention.py: graph attention with the edge projection at node level.

Shapes (one sample b; rows of a target node n are `row = b * num_targets + n`):
  query (B, Nt, C); edge_query and edge_mix (H, B*Nt, Ce): per head, W_ek,h^T q and the
  softmax-weighted sum of the raw edge features; kv_source (B, Ns, 2C) = [keys | values];
  edges (B or 1, E, Ce) raw edge features; scores (B, E, H) fp32 scaled logits; lse (B, Nt, H).

Forward: `scores_kernel` (one program per target) computes every incoming edge's logits as two
small tensor-core products per tile of 16 edges, edges x channels times channels x heads: the
source keys against the query spread over a block-diagonal (channel, head) matrix, the raw edge
rows against the node's edge queries; it writes them and their log-sum-exp. `aggregate_kernel`
(one program per target, 64 output columns at a time) forms the softmax weights again and sums
the source values and, as one (heads x edges) x (edges x columns) product, the raw edge rows.
Backward mirrors it: `score_grads_kernel` (the gradient of each weight, and delta = sum of
weight x its gradient), then `input_grads_kernel` (query, edge queries, raw edges, and fp32
atomics into the sources' [keys | values]). Everything accumulates in fp32.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _target_program(offsets, num_targets, HEADS: tl.constexpr, BLOCK_H: tl.constexpr):
    """This program's target node and sample, their row, the head lanes, and the node's edges
    [start, end) in the target-sorted order."""
    node = tl.program_id(0).to(tl.int64)
    sample = tl.program_id(1).to(tl.int64)
    heads = tl.arange(0, BLOCK_H)
    start = tl.load(offsets + node)
    end = tl.load(offsets + node + 1)
    return sample, sample * num_targets + node, heads, heads < HEADS, start, end


@triton.jit
def _edge_block(offset, block_start, end, sources, BLOCK_E: tl.constexpr):
    edge_ids = block_start + tl.arange(0, BLOCK_E)
    edge_valid = edge_ids < end
    source = tl.load(sources + edge_ids, mask=edge_valid, other=0).to(tl.int64)
    return edge_ids.to(tl.int64), edge_valid, source + offset


@triton.jit
def _by_head(vector, columns, heads, HEAD_DIM: tl.constexpr, dtype):
    """(K,) values of channel columns -> (K, H) with each value in its head's column only."""
    return tl.where((columns[:, None] // HEAD_DIM) == heads[None, :], vector[:, None], 0.0).to(
        dtype
    )


@triton.jit
def _edge_rows(edges, edge_ids, edge_valid, columns, column_valid, EDGE_CHANNELS: tl.constexpr):
    """(edges, columns) tile of the raw edge features (`edges` already at the sample)."""
    return tl.load(
        edges + edge_ids[:, None] * EDGE_CHANNELS + columns[None, :],
        mask=edge_valid[:, None] & column_valid[None, :],
        other=0.0,
    )


@triton.jit
def _products_per_head(
    kv_source, source_column, vector, edges, per_head, head_stride, row,
    edge_ids, edge_valid, source, heads, head_valid,
    CHANNELS: tl.constexpr, EDGE_CHANNELS: tl.constexpr, HEAD_DIM: tl.constexpr,
    BLOCK_E: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr,
    PRECISION: tl.constexpr,
):  # fmt: skip
    """(edges, heads): for edge e and head h, the sum over h's channels c of
    kv_source[source_e, source_column + c] x vector[c], plus the sum over all edge channels c
    of edges[e, c] x per_head[h, row, c]. Logits: keys, query, edge queries; their gradient:
    values, the output's gradient, the edge mixes' gradient."""
    out = tl.zeros([BLOCK_E, BLOCK_H], tl.float32)
    for k in range(0, CHANNELS, BLOCK_K):
        columns = k + tl.arange(0, BLOCK_K)
        column_valid = columns < CHANNELS
        sources_tile = tl.load(
            kv_source + source[:, None] * 2 * CHANNELS + source_column + columns[None, :],
            mask=edge_valid[:, None] & column_valid[None, :],
            other=0.0,
        )
        values = tl.load(vector + columns, mask=column_valid, other=0.0)
        by_head = _by_head(values, columns, heads, HEAD_DIM, sources_tile.dtype)
        out = tl.dot(sources_tile, by_head, out, input_precision=PRECISION)
    for k in range(0, EDGE_CHANNELS, BLOCK_K):
        columns = k + tl.arange(0, BLOCK_K)
        column_valid = columns < EDGE_CHANNELS
        edge_rows = _edge_rows(edges, edge_ids, edge_valid, columns, column_valid, EDGE_CHANNELS)
        head_rows = tl.load(
            per_head + heads[:, None] * head_stride + row * EDGE_CHANNELS + columns[None, :],
            mask=head_valid[:, None] & column_valid[None, :],
            other=0.0,
        ).to(edge_rows.dtype)
        out = tl.dot(edge_rows, tl.trans(head_rows), out, input_precision=PRECISION)
    return out


@triton.jit
def scores_kernel(
    query, edge_query, score_bias, kv_source, edges, offsets, sources, scores, lse,
    num_targets, num_sources, num_edges, edge_batch_stride, head_stride, scale,
    CHANNELS: tl.constexpr, EDGE_CHANNELS: tl.constexpr, HEADS: tl.constexpr,
    HEAD_DIM: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_H: tl.constexpr,
    BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    sample, row, heads, head_valid, start, end = _target_program(
        offsets, num_targets, HEADS, BLOCK_H
    )
    bias = tl.load(score_bias + row * HEADS + heads, mask=head_valid, other=0.0)
    row_max = tl.full([BLOCK_H], float("-inf"), tl.float32)
    row_sum = tl.zeros([BLOCK_H], tl.float32)
    for block_start in range(start, end, BLOCK_E):
        edge_ids, edge_valid, source = _edge_block(
            sample * num_sources, block_start, end, sources, BLOCK_E
        )
        logits = _products_per_head(
            kv_source, 0, query + row * CHANNELS, edges + sample * edge_batch_stride,
            edge_query, head_stride, row, edge_ids, edge_valid, source, heads, head_valid,
            CHANNELS, EDGE_CHANNELS, HEAD_DIM, BLOCK_E, BLOCK_H, BLOCK_K, PRECISION,
        )  # fmt: skip
        logits = logits * scale + bias[None, :]
        logits = tl.where(edge_valid[:, None], logits, float("-inf"))
        tl.store(
            scores + (sample * num_edges + edge_ids)[:, None] * HEADS + heads[None, :],
            logits,
            mask=edge_valid[:, None] & head_valid[None, :],
        )
        new_max = tl.maximum(row_max, tl.max(logits, axis=0))
        row_sum = row_sum * tl.exp(row_max - new_max) + tl.sum(
            tl.exp(logits - new_max[None, :]), axis=0
        )
        row_max = new_max
    has_edges = row_sum > 0
    log_sum = tl.where(has_edges, row_max + tl.log(tl.where(has_edges, row_sum, 1.0)), 0.0)
    tl.store(lse + row * HEADS + heads, log_sum, mask=head_valid)


@triton.jit
def _per_column(
    tile, rows, row_values, columns, column_valid, edge_valid, heads, chunk, other,
    HEAD_DIM: tl.constexpr, SINGLE_HEAD: tl.constexpr,
):  # fmt: skip
    """tile (edges, heads) = rows[e, h] - row_values[h], read at each column's head: when the
    BLOCK_N columns lie in one head, that column of `tile` (edges, 1); else gathered anew from
    memory (edges, BLOCK_N), `other` where masked."""
    if SINGLE_HEAD:
        picked = tl.where(heads[None, :] == chunk // HEAD_DIM, tile, 0.0)
        result = tl.sum(picked, axis=1)[:, None]
    else:
        column_head = columns // HEAD_DIM
        row_value = tl.load(row_values + column_head, mask=column_valid, other=0.0)
        loaded = tl.load(
            rows + column_head[None, :],
            mask=edge_valid[:, None] & column_valid[None, :],
            other=other,
        )
        result = loaded - row_value[None, :]
    return result


@triton.jit
def aggregate_kernel(
    edge_mix, out, kv_source, edges, offsets, sources, scores, lse,
    num_targets, num_sources, num_edges, edge_batch_stride, head_stride,
    CHANNELS: tl.constexpr, EDGE_CHANNELS: tl.constexpr, HEADS: tl.constexpr,
    HEAD_DIM: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_H: tl.constexpr,
    BLOCK_N: tl.constexpr, WIDTH: tl.constexpr, SINGLE_HEAD: tl.constexpr,
    PRECISION: tl.constexpr,
):  # fmt: skip
    """One program per (target, sample), BLOCK_N columns of both outputs at a time."""
    sample, row, heads, head_valid, start, end = _target_program(
        offsets, num_targets, HEADS, BLOCK_H
    )
    log_sum = tl.load(lse + row * HEADS + heads, mask=head_valid, other=0.0)
    for chunk in range(0, WIDTH, BLOCK_N):
        columns = chunk + tl.arange(0, BLOCK_N)
        channel_valid = columns < CHANNELS
        edge_column_valid = columns < EDGE_CHANNELS
        mix = tl.zeros([BLOCK_H, BLOCK_N], tl.float32)
        total = tl.zeros([BLOCK_N], tl.float32)
        for block_start in range(start, end, BLOCK_E):
            edge_ids, edge_valid, source = _edge_block(
                sample * num_sources, block_start, end, sources, BLOCK_E
            )
            score_rows = scores + (sample * num_edges + edge_ids)[:, None] * HEADS
            logits = (
                tl.load(
                    score_rows + heads[None, :],
                    mask=edge_valid[:, None] & head_valid[None, :],
                    other=float("-inf"),
                )
                - log_sum[None, :]
            )
            weights = tl.exp(logits)
            edge_rows = _edge_rows(
                edges + sample * edge_batch_stride, edge_ids, edge_valid, columns,
                edge_column_valid, EDGE_CHANNELS,
            )  # fmt: skip
            mix = tl.dot(
                tl.trans(weights).to(edge_rows.dtype), edge_rows, mix, input_precision=PRECISION
            )
            column_weights = tl.exp(
                _per_column(
                    logits, score_rows, lse + row * HEADS, columns, channel_valid, edge_valid,
                    heads, chunk, float("-inf"), HEAD_DIM, SINGLE_HEAD,
                )
            )  # fmt: skip
            values = tl.load(
                kv_source + source[:, None] * 2 * CHANNELS + CHANNELS + columns[None, :],
                mask=edge_valid[:, None] & channel_valid[None, :],
                other=0.0,
            ).to(tl.float32)
            total += tl.sum(column_weights * values, axis=0)
        tl.store(out + row * CHANNELS + columns, total.to(out.dtype.element_ty), mask=channel_valid)
        tl.store(
            edge_mix + heads[:, None] * head_stride + row * EDGE_CHANNELS + columns[None, :],
            mix.to(edge_mix.dtype.element_ty),
            mask=head_valid[:, None] & edge_column_valid[None, :],
        )


@triton.jit
def score_grads_kernel(
    grad_out, grad_mix, kv_source, edges, offsets, sources, scores, lse, grad_scores, delta,
    num_targets, num_sources, num_edges, edge_batch_stride, head_stride,
    CHANNELS: tl.constexpr, EDGE_CHANNELS: tl.constexpr, HEADS: tl.constexpr,
    HEAD_DIM: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_H: tl.constexpr,
    BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    """grad_scores: the gradient of each softmax weight (not yet of the logit);
    delta: per target and head, sum over its edges of weight x that gradient."""
    sample, row, heads, head_valid, start, end = _target_program(
        offsets, num_targets, HEADS, BLOCK_H
    )
    log_sum = tl.load(lse + row * HEADS + heads, mask=head_valid, other=0.0)
    total = tl.zeros([BLOCK_H], tl.float32)
    for block_start in range(start, end, BLOCK_E):
        edge_ids, edge_valid, source = _edge_block(
            sample * num_sources, block_start, end, sources, BLOCK_E
        )
        grads = _products_per_head(
            kv_source, CHANNELS, grad_out + row * CHANNELS, edges + sample * edge_batch_stride,
            grad_mix, head_stride, row, edge_ids, edge_valid, source, heads, head_valid,
            CHANNELS, EDGE_CHANNELS, HEAD_DIM, BLOCK_E, BLOCK_H, BLOCK_K, PRECISION,
        )  # fmt: skip
        score_offsets = (sample * num_edges + edge_ids)[:, None] * HEADS + heads[None, :]
        valid = edge_valid[:, None] & head_valid[None, :]
        weights = tl.exp(tl.load(scores + score_offsets, mask=valid, other=float("-inf")) - log_sum)
        tl.store(grad_scores + score_offsets, grads, mask=valid)
        total += tl.sum(weights * grads, axis=0)
    tl.store(delta + row * HEADS + heads, total, mask=head_valid)


@triton.jit
def input_grads_kernel(
    query, edge_query, grad_out, grad_mix, kv_source, edges, offsets, sources, scores, lse,
    grad_scores, delta, grad_query, grad_edge_query, grad_edges, grad_kv_source,
    num_targets, num_sources, num_edges, edge_batch_stride, head_stride, scale,
    CHANNELS: tl.constexpr, EDGE_CHANNELS: tl.constexpr, HEADS: tl.constexpr,
    HEAD_DIM: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_H: tl.constexpr,
    BLOCK_N: tl.constexpr, WIDTH: tl.constexpr, SINGLE_HEAD: tl.constexpr,
    PRECISION: tl.constexpr,
):  # fmt: skip
    """One program per (target, sample), BLOCK_N columns at a time: grad_query (B, Nt, C),
    grad_edge_query (H, B*Nt, Ce) and grad_edges (B, E, Ce) are written; grad_kv_source
    (B, Ns, 2C) fp32 is accumulated into (zero it first)."""
    sample, row, heads, head_valid, start, end = _target_program(
        offsets, num_targets, HEADS, BLOCK_H
    )
    log_sum = tl.load(lse + row * HEADS + heads, mask=head_valid, other=0.0)
    total = tl.load(delta + row * HEADS + heads, mask=head_valid, other=0.0)
    for chunk in range(0, WIDTH, BLOCK_N):
        columns = chunk + tl.arange(0, BLOCK_N)
        channel_valid = columns < CHANNELS
        edge_column_valid = columns < EDGE_CHANNELS
        head_rows = heads[:, None] * head_stride + row * EDGE_CHANNELS + columns[None, :]
        head_columns_valid = head_valid[:, None] & edge_column_valid[None, :]
        q = tl.load(query + row * CHANNELS + columns, mask=channel_valid, other=0.0).to(tl.float32)
        d_out = tl.load(grad_out + row * CHANNELS + columns, mask=channel_valid, other=0.0).to(
            tl.float32
        )
        queries = tl.load(edge_query + head_rows, mask=head_columns_valid, other=0.0)
        d_mix = tl.load(grad_mix + head_rows, mask=head_columns_valid, other=0.0).to(queries.dtype)
        d_queries = tl.zeros([BLOCK_H, BLOCK_N], tl.float32)
        d_q = tl.zeros([BLOCK_N], tl.float32)
        for block_start in range(start, end, BLOCK_E):
            edge_ids, edge_valid, source = _edge_block(
                sample * num_sources, block_start, end, sources, BLOCK_E
            )
            score_rows = (sample * num_edges + edge_ids)[:, None] * HEADS
            valid = edge_valid[:, None] & head_valid[None, :]
            logits = (
                tl.load(scores + score_rows + heads[None, :], mask=valid, other=float("-inf"))
                - log_sum[None, :]
            )
            weights = tl.exp(logits)
            d_weights = (
                tl.load(grad_scores + score_rows + heads[None, :], mask=valid, other=0.0)
                - total[None, :]
            )
            d_logits = weights * d_weights * scale
            edge_rows = _edge_rows(
                edges + sample * edge_batch_stride, edge_ids, edge_valid, columns,
                edge_column_valid, EDGE_CHANNELS,
            )  # fmt: skip
            d_queries = tl.dot(
                tl.trans(d_logits).to(edge_rows.dtype), edge_rows, d_queries,
                input_precision=PRECISION,
            )  # fmt: skip
            d_edges = tl.dot(d_logits.to(queries.dtype), queries, input_precision=PRECISION)
            d_edges = tl.dot(weights.to(queries.dtype), d_mix, d_edges, input_precision=PRECISION)
            tl.store(
                grad_edges + (sample * num_edges + edge_ids)[:, None] * EDGE_CHANNELS
                + columns[None, :],
                d_edges.to(grad_edges.dtype.element_ty),
                mask=edge_valid[:, None] & edge_column_valid[None, :],
            )  # fmt: skip
            column_weights = tl.exp(
                _per_column(
                    logits, scores + score_rows, lse + row * HEADS, columns, channel_valid,
                    edge_valid, heads, chunk, float("-inf"), HEAD_DIM, SINGLE_HEAD,
                )
            )  # fmt: skip
            # each column's d_logit: weight x (its gradient - delta) x scale, of its head
            column_d_logits = column_weights * scale * _per_column(
                d_weights, grad_scores + score_rows, delta + row * HEADS, columns, channel_valid,
                edge_valid, heads, chunk, 0.0, HEAD_DIM, SINGLE_HEAD,
            )  # fmt: skip
            column_valid = edge_valid[:, None] & channel_valid[None, :]
            source_rows = source[:, None] * 2 * CHANNELS + columns[None, :]
            keys = tl.load(kv_source + source_rows, mask=column_valid, other=0.0).to(tl.float32)
            d_q += tl.sum(column_d_logits * keys, axis=0)
            tl.atomic_add(
                grad_kv_source + source_rows, column_d_logits * q[None, :], mask=column_valid,
                sem="relaxed",
            )  # fmt: skip
            tl.atomic_add(
                grad_kv_source + source_rows + CHANNELS, column_weights * d_out[None, :],
                mask=column_valid, sem="relaxed",
            )  # fmt: skip
        tl.store(
            grad_query + row * CHANNELS + columns,
            d_q.to(grad_query.dtype.element_ty),
            mask=channel_valid,
        )
        tl.store(
            grad_edge_query + head_rows,
            d_queries.to(grad_edge_query.dtype.element_ty),
            mask=head_columns_valid,
        )
