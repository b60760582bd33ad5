"""Icosahedral mesh nodes and edges, and the restriction of any node set to an area.

All angles are in radians (see `spherical`).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from squall.graphs.spherical import km_to_chord, latlon_order, latlon_to_xyz, xyz_to_latlon


def check_refinement(refinement: int, what: str = "mesh refinement") -> int:
    if isinstance(refinement, bool) or not isinstance(refinement, int | np.integer):
        raise ValueError(f"{what} must be a non-negative integer, got {refinement!r}")
    if refinement < 0:
        raise ValueError(
            f"{what} must be a non-negative integer, got {refinement!r}; use e.g. 4 "
            "(2,562 icosahedral nodes) or 5 (10,242 nodes)"
        )
    return int(refinement)


@lru_cache(maxsize=2)
def _icosphere(refinement: int) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (trimesh order) and unique edges of an icosphere; cached, it is reused a lot."""
    mesh = trimesh.creation.icosphere(subdivisions=refinement)
    vertices = np.array(mesh.vertices, dtype=np.float64)
    edges = np.array(mesh.edges_unique, dtype=np.int64)
    vertices.flags.writeable = edges.flags.writeable = False
    return vertices, edges


def _sorting(vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(order, rank): order sorts the vertices by lat/lon; rank[i] is vertex i's sorted index."""
    order = latlon_order(*xyz_to_latlon(vertices))
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return order, rank


def icosahedral_nodes(refinement: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nodes and edges of an icosphere refined `refinement` times (10 * 4**r + 2 nodes).

    Nodes are sorted by latitude, then longitude. Returns (lat_rad, lon_rad, edges) with
    edges an int64 array (E, 2) of unique undirected pairs (i < j) in the sorted order.
    """
    refinement = check_refinement(refinement)
    vertices, edges = _icosphere(refinement)
    order, rank = _sorting(vertices)
    lat, lon = xyz_to_latlon(vertices[order])
    lon = np.mod(lon + np.pi, 2 * np.pi) - np.pi  # [-pi, pi), as sorted
    return lat, lon, np.sort(rank[edges], axis=1)


def icosahedral_level_edges(
    refinement: int, levels: Iterable[int] | None = None
) -> list[np.ndarray]:
    """Mesh edges of each level (default 1..refinement) on the sorted level-`refinement` nodes.

    Coarse levels give long edges that carry information far in few message-passing steps.
    trimesh's subdivision appends new vertices after the old ones, so level-r vertices are a
    prefix of level-R vertices (checked here). Returns one int64 array (E_r, 2) of undirected
    pairs (i < j) per level, in the order of `levels`.
    """
    refinement = check_refinement(refinement)
    levels = list(range(1, refinement + 1)) if levels is None else list(levels)
    for level in levels:
        check_refinement(level, "multi-scale level")
        if level > refinement:
            raise ValueError(
                f"multi-scale level {level} is finer than the mesh refinement {refinement}; "
                f"use levels between 0 and {refinement}"
            )
    finest, _ = _icosphere(refinement)
    _, rank = _sorting(finest)
    level_edges = []
    for level in levels:
        vertices, edges = _icosphere(level)
        if not np.allclose(vertices, finest[: len(vertices)], atol=1e-9):
            raise RuntimeError("icosphere levels are not nested; cannot build multi-scale edges")
        level_edges.append(np.sort(rank[edges], axis=1))
    return level_edges


def icosahedral_coarse_mask(refinement: int, coarse_refinement: int) -> np.ndarray:
    """Boolean mask over the sorted level-`refinement` nodes: True for level-`coarse` vertices."""
    refinement = check_refinement(refinement)
    coarse_refinement = check_refinement(coarse_refinement, "coarse refinement")
    if coarse_refinement > refinement:
        raise ValueError(
            f"the coarse refinement ({coarse_refinement}) must not exceed the fine refinement "
            f"({refinement})"
        )
    _, rank = _sorting(_icosphere(refinement)[0])
    mask = np.zeros(len(rank), dtype=bool)
    mask[rank[: 10 * 4**coarse_refinement + 2]] = True
    return mask


def restrict_to_area(
    lat: np.ndarray,
    lon: np.ndarray,
    reference_lat: np.ndarray,
    reference_lon: np.ndarray,
    margin_km: float,
) -> np.ndarray:
    """Boolean mask of the nodes (lat, lon) within `margin_km` great-circle km of any reference.

    Used to keep only the mesh nodes near a regional domain. All angles in radians.
    """
    if not np.isfinite(margin_km) or margin_km < 0:
        raise ValueError(f"margin_km must be a non-negative number of km, got {margin_km!r}")
    reference = latlon_to_xyz(reference_lat, reference_lon).reshape(-1, 3)
    if len(reference) == 0:
        raise ValueError("restrict_to_area needs at least one reference node; got none")
    nodes = latlon_to_xyz(lat, lon).reshape(-1, 3)
    # Chord length grows monotonically with arc length, so a chord radius selects the same nodes.
    radius = km_to_chord(margin_km)
    distance, _ = cKDTree(reference).query(
        nodes, k=1, distance_upper_bound=radius * (1 + 1e-12), workers=-1
    )
    return np.isfinite(distance)
