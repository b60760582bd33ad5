"""Compressed-row offsets of target-sorted edges (graph_inputs.graph_edges sorts them once)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.weak import WeakIdKeyDictionary


def row_offsets(target_index: torch.Tensor, num_targets: int) -> torch.Tensor:
    """(num_targets + 1,) int64: the edges of target t are rows offsets[t]:offsets[t+1].

    searchsorted runs on the device with no host synchronisation (bincount would need the
    maximum on the host); `target_index` must be sorted, which the graph loader guarantees.
    """
    targets = torch.arange(num_targets + 1, device=target_index.device, dtype=target_index.dtype)
    # int64, so the kernels' edge loop counters index past 2**31 elements safely
    return torch.searchsorted(target_index, targets)


# per edge_index tensor (a graph's buffer, a shard's or a mapper chunk's cached index): what the
# kernels derive from it, made once and reused by every layer and step; dropped with the tensor
_DERIVED: WeakIdKeyDictionary = WeakIdKeyDictionary()


def derived_from_edges(edge_index: torch.Tensor, key: tuple, build: Callable[[], Any]) -> Any:
    """`build()`, something made from edge_index's values, once per edge_index tensor and `key`
    (made again if edge_index was changed in place): the step does no index work twice."""
    entries = _DERIVED.setdefault(edge_index, {})
    # a tensor made under torch.inference_mode keeps no version counter (nor can it change
    # outside that mode)
    current = -1 if edge_index.is_inference() else edge_index._version
    version, value = entries.get(key, (None, None))
    if version != current:
        value = build()
        entries[key] = (current, value)
    return value


def target_csr(edge_index: torch.Tensor, num_targets: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(row_offsets of the target-sorted edges, their sources as int32), cached per edge set."""
    return derived_from_edges(
        edge_index,
        ("target_csr", num_targets),
        lambda: (row_offsets(edge_index[1], num_targets), edge_index[0].to(torch.int32)),
    )


def source_csr(
    edge_index: torch.Tensor, num_sources: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(offsets (num_sources + 1,) int64, order (E,) int32, targets (E,) int32): the outgoing
    edges of source s are order[offsets[s]:offsets[s+1]], edge e points at targets[e]. Sorted
    once per edge set (cached), so a backward walks the edges by source without a sort a step."""

    def build():
        sorted_sources, order = torch.sort(edge_index[0], stable=True)
        bounds = torch.arange(num_sources + 1, device=edge_index.device, dtype=sorted_sources.dtype)
        offsets = torch.searchsorted(sorted_sources, bounds)
        return offsets, order.to(torch.int32), edge_index[1].to(torch.int32)

    return derived_from_edges(edge_index, ("source_csr", num_sources), build)
