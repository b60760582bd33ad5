"""Compressed-row offsets of target-sorted edges (graph_inputs.graph_edges sorts them once)."""

from __future__ import annotations

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


# per edge_index tensor (a graph's buffer, a mapper chunk's cached index): built once, reused
# by every layer and step; dropped with the tensor
_SOURCE_ORDERS: WeakIdKeyDictionary = WeakIdKeyDictionary()


def source_order(edge_index: torch.Tensor, num_sources: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(order (E,) int32: the edges' ids sorted by source node, offsets (num_sources + 1,)
    int64: the outgoing edges of source s are order[offsets[s]:offsets[s+1]]).

    Sorted once per edge_index tensor and cached (checked against in-place changes), so a
    layer's backward walks the edges by source without sorting at every step."""
    key = (edge_index._version, num_sources)
    cached = _SOURCE_ORDERS.get(edge_index)
    if cached is not None and cached[0] == key:
        return cached[1]
    sorted_sources, order = torch.sort(edge_index[0], stable=True)
    bounds = torch.arange(num_sources + 1, device=edge_index.device, dtype=sorted_sources.dtype)
    result = (order.to(torch.int32), torch.searchsorted(sorted_sources, bounds))
    _SOURCE_ORDERS[edge_index] = (key, result)
    return result
