"""Which graph block a mapper or processor kind uses, and how mappers split their targets."""

from __future__ import annotations

import torch
from torch import nn

from squall.models.graph_transformer import GraphTransformerBlock
from squall.models.layer_kernels import LayerKernels
from squall.models.message_passing import GraphMessagePassing

GRAPH_BLOCK_KINDS = ("gnn", "graphtransformer")


def make_graph_block(
    kind: str,
    channels: int,
    mlp_hidden_layers: int,
    kernels: LayerKernels,
    num_heads: int,
    condition_channels: int = 0,
    mlp_hidden_ratio: float | None = None,
    edge_latent_channels: int | None = None,
) -> nn.Module:
    """A block (x_src, x_dst, edge_index, e, condition) -> (x_dst_new, e_new) of `kind`.
    `mlp_hidden_ratio` (MLP hidden width / channels) None: the kind's default (GNN 1, graph
    transformer 2). `edge_latent_channels`: width of the edge latents e (None: `channels`)."""
    ratio = {} if mlp_hidden_ratio is None else {"mlp_hidden_ratio": mlp_hidden_ratio}
    edges = edge_latent_channels or channels
    if kind == "gnn":
        return GraphMessagePassing(
            channels, edges, mlp_hidden_layers, kernels, condition_channels, **ratio
        )
    if kind == "graphtransformer":
        return GraphTransformerBlock(
            channels, edges, num_heads, mlp_hidden_layers, kernels, condition_channels, **ratio
        )
    raise ValueError(f"unknown graph block kind {kind!r}; choose one of {GRAPH_BLOCK_KINDS}.")


def target_chunks(
    target_index: torch.Tensor, num_targets: int, num_chunks: int
) -> list[tuple[int, int, int, int]]:
    """Split targets into `num_chunks` contiguous ranges with their incoming edges.

    This is what num_chunks means everywhere: the target nodes are cut into num_chunks groups of
    (nearly) equal size, processed one after the other, so only one group's edge activations
    exist at a time. Needs `target_index` sorted. Returns (target_start, target_end, edge_start,
    edge_end) per chunk; results do not depend on num_chunks.
    """
    if num_chunks < 1:
        raise ValueError(f"num_chunks must be >= 1, got {num_chunks}.")
    if target_index.numel() > 1 and bool((target_index[1:] < target_index[:-1]).any()):
        raise ValueError("edges must be sorted by target node to be chunked")
    num_chunks = min(num_chunks, max(num_targets, 1))
    bounds = torch.linspace(0, num_targets, num_chunks + 1).round().long()
    edge_bounds = torch.searchsorted(target_index.cpu(), bounds)
    return [
        (int(bounds[i]), int(bounds[i + 1]), int(edge_bounds[i]), int(edge_bounds[i + 1]))
        for i in range(num_chunks)
    ]
