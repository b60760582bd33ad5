"""Edge builders. Every builder returns `edge_index`, a LongTensor (2, E): row 0 holds source
indices, row 1 target indices, sorted by target then source, once here, so the model never
sorts at run time.

Node positions are unit vectors (N, 3); distances are chord lengths on the unit sphere.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from scipy.spatial import cKDTree


def _as_xyz(points: np.ndarray, name: str) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"{name} must be unit vectors of shape (N, 3), got {points.shape}")
    if len(points) == 0:
        raise ValueError(f"{name} is empty: an edge set needs at least one node on each side")
    return points


def _positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def sort_by_target(source: np.ndarray, target: np.ndarray, node_count: int) -> torch.Tensor:
    """Unique edges (2, E) sorted by target, then source (deterministic order)."""
    key = np.unique(np.asarray(target, dtype=np.int64) * node_count + source)
    return torch.from_numpy(np.stack([key % node_count, key // node_count]))


def _rows_to_edge_index(neighbours: np.ndarray, source_count: int) -> torch.Tensor:
    """edge_index of a (targets, k) neighbour table; entries equal to source_count are absent."""
    neighbours = np.sort(neighbours, axis=1)  # by source within each target; absent ones last
    found = neighbours < source_count
    targets = np.broadcast_to(np.arange(len(neighbours))[:, None], neighbours.shape)
    return torch.from_numpy(np.stack([neighbours[found], targets[found]]).astype(np.int64))


def knn_edges(source_xyz: np.ndarray, target_xyz: np.ndarray, k: int) -> torch.Tensor:
    """The `k` nearest source nodes of every target node (exactly k edges per target)."""
    source_xyz = _as_xyz(source_xyz, "source_xyz")
    target_xyz = _as_xyz(target_xyz, "target_xyz")
    k = _positive_int(k, "k (number of neighbours)")
    if k > len(source_xyz):
        raise ValueError(
            f"k={k} neighbours requested but only {len(source_xyz)} source nodes exist; "
            "lower k or use a finer source node set"
        )
    _, neighbours = cKDTree(source_xyz).query(target_xyz, k=k, workers=-1)
    return _rows_to_edge_index(np.asarray(neighbours).reshape(len(target_xyz), k), len(source_xyz))


def reference_distance(xyz: np.ndarray) -> float:
    """Largest nearest-neighbour distance within a node set: the spacing of its sparsest part.

    Coincident nodes (distance 0) are skipped: their nearest distinct neighbour counts.
    """
    xyz = _as_xyz(xyz, "node set")
    distinct = np.unique(np.round(xyz, 12), axis=0)
    if len(distinct) < 2:
        raise ValueError("a reference distance needs at least two distinct nodes")
    distance, _ = cKDTree(distinct).query(distinct, k=2, workers=-1)
    return float(distance[:, 1].max())


def cutoff_edges(
    source_xyz: np.ndarray,
    target_xyz: np.ndarray,
    cutoff_factor: float,
    max_neighbours: int = 64,
    reference_xyz: np.ndarray | None = None,
) -> torch.Tensor:
    """Edges from every source within `cutoff_factor` x reference distance of each target.

    The reference distance is the largest nearest-neighbour distance among the targets (or
    among `reference_xyz`), so the radius scales with the target spacing. Each target keeps at
    most `max_neighbours` sources, the closest ones. Raises ValueError if a target gets no edge.
    """
    source_xyz = _as_xyz(source_xyz, "source_xyz")
    target_xyz = _as_xyz(target_xyz, "target_xyz")
    if not np.isfinite(cutoff_factor) or cutoff_factor <= 0:
        raise ValueError(f"cutoff_factor must be a positive number, got {cutoff_factor!r}")
    max_neighbours = _positive_int(max_neighbours, "max_neighbours")
    spacing = reference_distance(target_xyz if reference_xyz is None else reference_xyz)
    radius = cutoff_factor * spacing
    # One bounded k-query gives "within radius" and "closest max_neighbours" at once; missing
    # neighbours come back as index len(source).
    tree = cKDTree(source_xyz)
    _, neighbours = tree.query(
        target_xyz, k=min(max_neighbours, len(source_xyz)), distance_upper_bound=radius, workers=-1
    )
    neighbours = np.asarray(neighbours).reshape(len(target_xyz), -1)
    lonely = (neighbours == len(source_xyz)).all(axis=1)
    if lonely.any():
        nearest, _ = tree.query(target_xyz[lonely], k=1)
        raise ValueError(
            f"{int(lonely.sum())} of {len(target_xyz)} target nodes have no source node within "
            f"the cut-off radius (cutoff factor {cutoff_factor}); increase the cutoff factor to "
            f"at least {float(nearest.max()) / spacing:.3f}, or drop target nodes that lie far "
            "from every source"
        )
    return _rows_to_edge_index(neighbours, len(source_xyz))


def multiscale_mesh_edges(
    level_edges: Sequence[np.ndarray], keep_mask: np.ndarray | None = None
) -> torch.Tensor:
    """Union of mesh edges of all levels, in both directions, restricted to kept nodes.

    `level_edges` holds (E_r, 2) undirected pairs on one common node set (see
    `nodes.icosahedral_level_edges`). Edges with an endpoint outside `keep_mask` are dropped,
    and the rest are re-indexed to the kept nodes (in their original order).
    """
    pairs = [np.asarray(edges, dtype=np.int64).reshape(-1, 2) for edges in level_edges]
    pairs = np.concatenate(pairs) if pairs else np.empty((0, 2), dtype=np.int64)
    node_count = int(pairs.max()) + 1 if len(pairs) else 1
    if keep_mask is not None:
        keep_mask = np.asarray(keep_mask, dtype=bool)
        if len(pairs) and pairs.max() >= len(keep_mask):
            raise ValueError(
                f"keep_mask has {len(keep_mask)} entries but edges reference node "
                f"{int(pairs.max())}; pass the mask of the node set the edges were built on"
            )
        pairs = pairs[keep_mask[pairs].all(axis=1)]
        pairs = (np.cumsum(keep_mask) - 1)[pairs]
        node_count = max(int(keep_mask.sum()), 1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    source = np.concatenate([pairs[:, 0], pairs[:, 1]])
    target = np.concatenate([pairs[:, 1], pairs[:, 0]])
    return sort_by_target(source, target, node_count)


def masked_edges(
    builder: Callable[[np.ndarray, np.ndarray], torch.Tensor],
    source_xyz: np.ndarray,
    target_xyz: np.ndarray,
    source_mask: np.ndarray | None = None,
    target_mask: np.ndarray | None = None,
) -> torch.Tensor:
    """Run `builder(source_xyz, target_xyz)` on the masked nodes only; indices refer back to
    the full node sets. E.g. a decoder onto the regional part of a cut-out grid."""
    source_index = np.arange(len(source_xyz))
    target_index = np.arange(len(target_xyz))
    for name, mask, count in (
        ("source", source_mask, len(source_xyz)),
        ("target", target_mask, len(target_xyz)),
    ):
        if mask is not None and (np.shape(mask) != (count,) or not np.any(mask)):
            raise ValueError(
                f"the {name} mask must be a boolean array over the {count} {name} nodes with at "
                f"least one True, got shape {np.shape(mask)} with {int(np.sum(mask))} True"
            )
    if source_mask is not None:
        source_index = source_index[np.asarray(source_mask, dtype=bool)]
    if target_mask is not None:
        target_index = target_index[np.asarray(target_mask, dtype=bool)]
    local = builder(source_xyz[source_index], target_xyz[target_index])
    return torch.stack(
        [torch.from_numpy(source_index)[local[0]], torch.from_numpy(target_index)[local[1]]]
    )
