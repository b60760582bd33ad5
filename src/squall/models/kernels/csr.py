"""Compressed-row offsets of target-sorted edges (graph_inputs.graph_edges sorts them once)."""

from __future__ import annotations

import torch


def row_offsets(target_index: torch.Tensor, num_targets: int) -> torch.Tensor:
    """(num_targets + 1,) int64: the edges of target t are rows offsets[t]:offsets[t+1].

    searchsorted runs on the device with no host synchronisation (bincount would need the
    maximum on the host); `target_index` must be sorted, which the graph loader guarantees.
    """
    targets = torch.arange(num_targets + 1, device=target_index.device, dtype=target_index.dtype)
    # int64, so the kernels' edge loop counters index past 2**31 elements safely
    return torch.searchsorted(target_index, targets)
