"""Processors: hidden -> hidden, `num_layers` blocks. Graph processors (GNN, graph transformer)
follow the hidden mesh edges; the transformer processor attends within a sliding window of the
hidden nodes in their stored (spatially compact) order and ignores the edges."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from squall.models.blocks import make_graph_block
from squall.models.layer_kernels import LayerKernels
from squall.models.layers import embed_for_matmul
from squall.models.sliding_window import HeadExchange, SlidingWindowBlock

PROCESSOR_KINDS = ("gnn", "graphtransformer", "transformer")


class Processor(nn.Module):
    """`forward(x, edge_index, edge_attr, condition=None)` -> x, for every kind.

    Graph kinds embed the edge attributes once into `edge_latent_channels`-wide latents (None:
    `channels`) and carry them from layer to layer (the GNN updates them, the graph transformer
    reads them). `condition` is the ensemble noise
    (batch, noise_channels) fed to conditional layer norms, when condition_channels > 0.
    """

    def __init__(
        self,
        kind: str,
        channels: int,
        edge_attr_channels: int,
        num_layers: int,
        mlp_hidden_layers: int = 1,
        kernels: LayerKernels | None = None,
        num_heads: int = 1,
        window_size: int = 64,
        condition_channels: int = 0,
        gradient_checkpointing: bool = False,
        mlp_hidden_ratio: float | None = None,
        edge_latent_channels: int | None = None,
    ) -> None:
        super().__init__()
        if kind not in PROCESSOR_KINDS:
            raise ValueError(f"unknown processor {kind!r}; choose one of {PROCESSOR_KINDS}.")
        kernels = kernels or LayerKernels()
        self.kind = kind
        self.gradient_checkpointing = gradient_checkpointing
        ratio = {} if mlp_hidden_ratio is None else {"mlp_hidden_ratio": mlp_hidden_ratio}
        if kind == "transformer":
            self.edge_embedding = None
            self.layers = nn.ModuleList(
                SlidingWindowBlock(
                    channels,
                    num_heads,
                    window_size,
                    mlp_hidden_layers,
                    kernels,
                    condition_channels,
                    **ratio,
                )
                for _ in range(num_layers)
            )
            return
        edge_channels = edge_latent_channels or channels
        self.edge_embedding = kernels.mlp(
            edge_attr_channels, edge_channels, edge_channels, num_hidden_layers=mlp_hidden_layers
        )
        self.layers = nn.ModuleList(
            make_graph_block(
                kind,
                channels,
                mlp_hidden_layers,
                kernels,
                num_heads,
                condition_channels,
                mlp_hidden_ratio,
                edge_channels,
            )
            for _ in range(num_layers)
        )

    def forward(
        self,
        x: torch.Tensor,
        edge_index: torch.Tensor,
        edge_attr: torch.Tensor,
        condition: torch.Tensor | None = None,
        shard_exchange: Callable[[torch.Tensor], torch.Tensor] | HeadExchange | None = None,
    ) -> torch.Tensor:
        """With model sharding (squall.distributed) x is this rank's shard of the nodes and
        `shard_exchange` brings in what the shard needs from the others: for graph kinds, a
        callable giving the source rows of its edges (which are sharded by target); for the
        transformer, the head exchange."""
        recompute = self.gradient_checkpointing and torch.is_grad_enabled()
        if self.edge_embedding is None:
            for layer in self.layers:
                if recompute:
                    x = checkpoint(layer, x, condition, shard_exchange, use_reentrant=False)
                else:
                    x = layer(x, condition, shard_exchange)
            return x
        if self.kind == "graphtransformer":  # read-only edges: cast once, not once per layer
            edge_features = embed_for_matmul(self.edge_embedding, edge_attr)
        else:
            edge_features = self.edge_embedding(edge_attr)
        for layer in self.layers:
            # The exchanged sources stay outside the recomputed part: no collectives in backward
            # beyond the exchange's own.
            sources = x if shard_exchange is None else shard_exchange(x)
            if recompute:
                # Keeps only each layer's inputs for backward; the edge activations
                # (batch x edges x channels, the bulk of the memory) are recomputed.
                x, edge_features = checkpoint(
                    layer, sources, x, edge_index, edge_features, condition, use_reentrant=False
                )
            else:
                x, edge_features = layer(sources, x, edge_index, edge_features, condition)
        return x
