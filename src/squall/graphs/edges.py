"""Edge builders. Every builder returns `edge_index`, a LongTensor (2, E): row 0 holds source
indices, row 1 target indices, sorted by target once here so the model never sorts at run time.

Node positions are unit vectors (N, 3); distances are chord lengths on the unit sphere.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def sort_by_target(source: np.ndarray, target: np.ndarray) -> torch.Tensor:
    """edge_index (2, E) sorted by target, then source (deterministic order)."""
    source = np.asarray(source, dtype=np.int64)
    target = np.asarray(target, dtype=np.int64)
    order = np.lexsort((source, target))
    return torch.from_numpy(np.stack([source[order], target[order]]))


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
    _, neighbours = cKDTree(source_xyz).query(target_xyz, k=k)
    neighbours = np.asarray(neighbours).reshape(len(target_xyz), k)
    targets = np.repeat(np.arange(len(target_xyz)), k)
    return sort_by_target(neighbours.ravel(), targets)


def reference_distance(xyz: np.ndarray) -> float:
    """Largest nearest-neighbour distance within a node set: the spacing of its sparsest part."""
    xyz = _as_xyz(xyz, "node set")
    if len(xyz) < 2:
        raise ValueError("a reference distance needs at least two nodes; got one")
    distance, _ = cKDTree(xyz).query(xyz, k=2)
    return float(distance[:, 1].max())


def cutoff_edges(
    source_xyz: np.ndarray,
    target_xyz: np.ndarray,
    cutoff_factor: float,
    max_neighbours: int = 64,
) -> torch.Tensor:
    """Edges from every source within `cutoff_factor` x reference distance of each target.

    The reference distance is the largest nearest-neighbour distance among the targets, so the
    radius scales with the target spacing. Each target keeps at most `max_neighbours` sources,
    the closest ones. Raises ValueError if some target would receive no edge.
    """
    source_xyz = _as_xyz(source_xyz, "source_xyz")
    target_xyz = _as_xyz(target_xyz, "target_xyz")
    if not np.isfinite(cutoff_factor) or cutoff_factor <= 0:
        raise ValueError(f"cutoff_factor must be a positive number, got {cutoff_factor!r}")
    max_neighbours = _positive_int(max_neighbours, "max_neighbours")
    radius = cutoff_factor * reference_distance(target_xyz)
    # One bounded k-query gives "within radius" and "closest max_neighbours" at once; missing
    # neighbours come back as distance inf.
    distance, neighbours = cKDTree(source_xyz).query(
        target_xyz, k=max_neighbours, distance_upper_bound=radius
    )
    distance = np.asarray(distance).reshape(len(target_xyz), -1)
    neighbours = np.asarray(neighbours).reshape(len(target_xyz), -1)
    found = np.isfinite(distance)
    lonely = ~found.any(axis=1)
    if lonely.any():
        nearest, _ = cKDTree(source_xyz).query(target_xyz[lonely], k=1)
        needed = float(nearest.max()) / (radius / cutoff_factor)
        raise ValueError(
            f"{int(lonely.sum())} of {len(target_xyz)} target nodes have no source node within "
            f"the cut-off radius (cutoff factor {cutoff_factor}); increase the cutoff factor to "
            f"at least {needed:.3f}, or drop target nodes that lie far from every source"
        )
    targets = np.broadcast_to(np.arange(len(target_xyz))[:, None], found.shape)
    return sort_by_target(neighbours[found], targets[found])


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
    if keep_mask is not None:
        keep_mask = np.asarray(keep_mask, dtype=bool)
        if len(pairs) and pairs.max() >= len(keep_mask):
            raise ValueError(
                f"keep_mask has {len(keep_mask)} entries but edges reference node "
                f"{int(pairs.max())}; pass the mask of the node set the edges were built on"
            )
        pairs = pairs[keep_mask[pairs].all(axis=1)]
        new_index = np.cumsum(keep_mask) - 1
        pairs = new_index[pairs]
    both_directions = np.concatenate([pairs, pairs[:, ::-1]])
    both_directions = both_directions[both_directions[:, 0] != both_directions[:, 1]]
    unique = np.unique(both_directions, axis=0)
    return sort_by_target(unique[:, 0], unique[:, 1])
