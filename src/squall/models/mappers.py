"""Mappers: move information from one node set to another (encoder data->hidden, decoder
hidden->data) with one graph block (GNN or graph transformer), edge-chunked by target."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from squall.models.blocks import make_graph_block, target_chunks
from squall.models.kernels.csr import derived_from_edges
from squall.models.layer_kernels import LayerKernels
from squall.models.layers import embed_for_matmul


class GraphMapper(nn.Module):
    """Static edge attributes are embedded, one block updates the target nodes, and with
    `update_sources` the source nodes get their own residual MLP: the encoder uses this so that
    the data nodes it returns are worth using as skip features in the decoder.

    `edge_index` (sorted by target) fixes the chunking: the targets are processed in
    `num_chunks` groups (see blocks.target_chunks); with gradient checkpointing each group is
    recomputed in backward, so training memory is bounded too; a graph-transformer block's
    source projection runs once for all chunks. Returns (x_src_new, x_dst_new).
    """

    def __init__(
        self,
        kind: str,
        node_channels: int,
        edge_attr_channels: int,
        edge_index: torch.Tensor,
        num_targets: int,
        mlp_hidden_layers: int = 1,
        kernels: LayerKernels | None = None,
        num_heads: int = 1,
        num_chunks: int = 1,
        update_sources: bool = False,
        gradient_checkpointing: bool = False,
        mlp_hidden_ratio: float | None = None,
        edge_latent_channels: int | None = None,
    ) -> None:
        super().__init__()
        kernels = kernels or LayerKernels()
        self.gradient_checkpointing = gradient_checkpointing
        self.chunks = target_chunks(edge_index[1], num_targets, num_chunks)
        edge_channels = edge_latent_channels or node_channels
        self.edge_embedding = kernels.mlp(
            edge_attr_channels, edge_channels, edge_channels, num_hidden_layers=mlp_hidden_layers
        )
        self.block = make_graph_block(
            kind,
            node_channels,
            mlp_hidden_layers,
            kernels,
            num_heads,
            mlp_hidden_ratio=mlp_hidden_ratio,
            edge_latent_channels=edge_channels,
        )
        # graph transformer: edge latents are read-only, sources projected before attending
        self.attention_block = hasattr(self.block, "project_sources")
        self.source_mlp = (
            kernels.mlp(
                node_channels, node_channels, node_channels, num_hidden_layers=mlp_hidden_layers
            )
            if update_sources
            else None
        )

    def _block(
        self,
        x_src: torch.Tensor,
        x_dst: torch.Tensor,
        edge_index: torch.Tensor,
        edge_attr: torch.Tensor,
    ) -> torch.Tensor:
        return self.block(x_src, x_dst, edge_index, self._embed_edges(edge_attr))[0]

    def _embed_edges(self, edge_attr: torch.Tensor) -> torch.Tensor:
        if self.attention_block:  # the latents only feed the block's edge projection
            return embed_for_matmul(self.edge_embedding, edge_attr)
        return self.edge_embedding(edge_attr)

    def _attend(
        self,
        kv_source: torch.Tensor,
        x_dst: torch.Tensor,
        edge_index: torch.Tensor,
        edge_attr: torch.Tensor,
    ) -> torch.Tensor:
        return self.block.attend(kv_source, x_dst, edge_index, self._embed_edges(edge_attr))

    def update_targets(
        self,
        x_src: torch.Tensor,
        x_dst: torch.Tensor,
        edge_index: torch.Tensor,
        edge_attr: torch.Tensor,
        chunks: list[tuple[int, int, int, int]] | None = None,
    ) -> torch.Tensor:
        """x_dst updated from x_src over the edges, chunk by chunk. `chunks` (target_chunks of
        this edge_index) default to the ones of the edges the mapper was built with; a grid
        shard passes those of its own edges."""
        recompute = self.gradient_checkpointing and torch.is_grad_enabled()
        parts = []
        chunks = self.chunks if chunks is None else chunks
        block, sources = self._block, x_src
        if len(chunks) > 1 and self.attention_block:
            # every chunk attends over all sources: project them once, not once per chunk
            block = self._attend
            if recompute:
                sources = checkpoint(self.block.project_sources, x_src, use_reentrant=False)
            else:
                sources = self.block.project_sources(x_src)
        # chunks tile the targets and edges (target_chunks): one split each, whose backward is
        # one concatenation (a slice per chunk would write a zero-filled full-size gradient each)
        target_parts = x_dst.split([end - start for start, end, _, _ in chunks], dim=1)
        edge_parts = edge_attr.split([end - start for _, _, start, end in chunks], dim=0)
        for (target_start, _, edge_start, edge_end), target_part, edge_part in zip(
            chunks, target_parts, edge_parts, strict=True
        ):
            local_index = _chunk_index(edge_index, target_start, edge_start, edge_end)
            args = (sources, target_part, local_index, edge_part)
            if recompute:
                parts.append(checkpoint(block, *args, use_reentrant=False))
            else:
                parts.append(block(*args))
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    def update_sources(self, x_src: torch.Tensor) -> torch.Tensor:
        """The sources' own residual update (identity unless built with update_sources)."""
        if self.source_mlp is None:
            return x_src
        if self.gradient_checkpointing and torch.is_grad_enabled():
            # its activations (several copies of the source nodes) would stay alive to the end
            # of backward; x_src, all the recompute needs, is kept anyway
            return x_src + checkpoint(self.source_mlp, x_src, use_reentrant=False)
        return x_src + self.source_mlp(x_src)

    def forward(
        self,
        x_src: torch.Tensor,
        x_dst: torch.Tensor,
        edge_index: torch.Tensor,
        edge_attr: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x_dst = self.update_targets(x_src, x_dst, edge_index, edge_attr)
        return self.update_sources(x_src), x_dst


def _chunk_index(
    edge_index: torch.Tensor, target_start: int, edge_start: int, edge_end: int
) -> torch.Tensor:
    """edge_index[:, edge_start:edge_end] with targets counted from target_start, made once per
    edge set, so the kernels' per-edge-set caches (kernels.csr) find the same tensor each call."""
    if target_start == 0 and edge_start == 0 and edge_end == edge_index.shape[1]:
        return edge_index

    def build() -> torch.Tensor:
        # a Python scalar, not new_tensor: no host-to-device copy (and sync)
        source_index, targets = edge_index[:, edge_start:edge_end]
        return torch.stack([source_index, targets - target_start])

    return derived_from_edges(edge_index, ("chunk", target_start, edge_start, edge_end), build)
