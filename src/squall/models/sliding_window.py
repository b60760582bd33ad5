"""Sliding-window self-attention over nodes in their stored order (the transformer processor).

Node i attends to nodes j with |i - j| <= window_size // 2. The sequence is cut into blocks of
half = window_size // 2 nodes; block b's queries see blocks b-1, b, b+1 (3 * half keys), which
holds every key in reach, and a band mask removes the rest. Memory is O(nodes * window), not
O(nodes^2), and the attention itself is torch's scaled_dot_product_attention (flash or
memory-efficient kernels on GPU where the mask allows).

Under model sharding each rank holds a contiguous shard of the nodes; a HeadExchange (see
squall.distributed.exchange) trades it for every node of a share of the heads around the
attention, so the attention itself runs unchanged on whole sequences.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from squall.models.layer_kernels import LayerKernels
from squall.models.layers import apply_norm, make_norm, mlp_hidden_width


class HeadExchange(Protocol):
    def to_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, local nodes, parts, heads, d) -> (batch, all nodes, parts, own heads, d)"""

    def to_nodes(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, all nodes, own heads, d) -> (batch, local nodes, heads, d)"""


def _band_mask(num_blocks: int, half: int, num_nodes: int, device: torch.device) -> torch.Tensor:
    """(num_blocks, half, 3 * half) bool: query node may attend key node."""
    block = torch.arange(num_blocks, device=device)[:, None, None]
    query = block * half + torch.arange(half, device=device)[None, :, None]
    key = (block - 1) * half + torch.arange(3 * half, device=device)[None, None, :]
    return ((query - key).abs() <= half) & (key >= 0) & (key < num_nodes)


def sliding_window_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, window_size: int
) -> torch.Tensor:
    """q, k, v (batch, heads, nodes, head_channels) -> (batch, heads, nodes, head_channels)."""
    batch, heads, nodes, head_channels = query.shape
    half = max(1, min(window_size // 2, nodes))
    num_blocks = -(-nodes // half)
    padding = num_blocks * half - nodes

    def blocks(t: torch.Tensor) -> torch.Tensor:  # (B, H, nb, half, d)
        return F.pad(t, (0, 0, 0, padding)).reshape(batch, heads, num_blocks, half, head_channels)

    def neighbourhood(t: torch.Tensor) -> torch.Tensor:  # (B, H, nb, 3 half, d)
        padded = F.pad(blocks(t), (0, 0, 0, 0, 1, 1))
        return torch.cat([padded[:, :, :-2], padded[:, :, 1:-1], padded[:, :, 2:]], dim=3)

    mask = _band_mask(num_blocks, half, nodes, query.device).repeat(heads, 1, 1)
    flat = (batch, heads * num_blocks)
    out = F.scaled_dot_product_attention(
        blocks(query).reshape(*flat, half, head_channels),
        neighbourhood(key).reshape(*flat, 3 * half, head_channels),
        neighbourhood(value).reshape(*flat, 3 * half, head_channels),
        attn_mask=mask,
    )
    return out.reshape(batch, heads, num_blocks * half, head_channels)[:, :, :nodes]


class SlidingWindowBlock(nn.Module):
    """Pre-norm transformer block: x + attention(LN(x)), then x + MLP(LN(x))."""

    def __init__(
        self,
        channels: int,
        num_heads: int,
        window_size: int,
        mlp_hidden_layers: int = 1,
        kernels: LayerKernels | None = None,
        condition_channels: int = 0,
        mlp_hidden_ratio: float = 2.0,
    ) -> None:
        super().__init__()
        if channels % num_heads:
            raise ValueError(
                f"hidden_channels={channels} is not divisible by num_heads={num_heads}; "
                "pick a head count that divides the channels."
            )
        if window_size < 2:
            raise ValueError(f"window_size must be >= 2 nodes, got {window_size}.")
        kernels = kernels or LayerKernels()
        self.num_heads, self.window_size = num_heads, window_size
        self.attention_norm = make_norm(channels, kernels, condition_channels)
        self.query_key_value = kernels.linear(channels, 3 * channels)
        self.projection = kernels.linear(channels, channels)
        self.mlp_norm = make_norm(channels, kernels, condition_channels)
        self.mlp = kernels.mlp(
            channels,
            mlp_hidden_width(channels, mlp_hidden_ratio),
            channels,
            num_hidden_layers=mlp_hidden_layers,
            layer_norm=False,
        )

    def forward(
        self,
        x: torch.Tensor,
        condition: torch.Tensor | None = None,
        heads: HeadExchange | None = None,
    ) -> torch.Tensor:
        batch, nodes, channels = x.shape
        qkv = self.query_key_value(apply_norm(self.attention_norm, x, condition))
        qkv = qkv.reshape(batch, nodes, 3, self.num_heads, channels // self.num_heads)
        if heads is not None:
            qkv = heads.to_heads(qkv)
        query, key, value = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, N, d)
        attended = sliding_window_attention(query, key, value, self.window_size).transpose(1, 2)
        if heads is not None:
            attended = heads.to_nodes(attended)
        x = x + self.projection(attended.reshape(batch, nodes, channels))
        return x + self.mlp(apply_norm(self.mlp_norm, x, condition))
