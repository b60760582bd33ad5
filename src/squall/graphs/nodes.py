"""Node sets of a graph: icosahedral mesh nodes, area restriction, lat/lon <-> unit vectors.

All angles are in radians. Distances between nodes are measured on the unit sphere; the Earth
radius below only converts user-facing kilometres into angles.
"""

from __future__ import annotations

import numpy as np
import trimesh
from scipy.spatial import cKDTree

EARTH_RADIUS_KM = 6371.0

# Latitudes are rounded before sorting so that nodes of one ring (equal latitude up to float
# noise) are ordered by longitude deterministically on every machine.
_SORT_DECIMALS = 10


def latlon_to_xyz(lat_rad: np.ndarray, lon_rad: np.ndarray) -> np.ndarray:
    """Unit vectors (N, 3) of points given by latitude and longitude in radians."""
    lat = np.asarray(lat_rad, dtype=np.float64)
    lon = np.asarray(lon_rad, dtype=np.float64)
    cos_lat = np.cos(lat)
    return np.stack([cos_lat * np.cos(lon), cos_lat * np.sin(lon), np.sin(lat)], axis=-1)


def xyz_to_latlon(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Latitude and longitude in radians (longitude in [-pi, pi]) of vectors (N, 3)."""
    xyz = np.asarray(xyz, dtype=np.float64)
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    # arctan2 on both angles stays accurate near the poles, where arcsin(z) loses precision.
    lat = np.arctan2(z, np.hypot(x, y))
    lon = np.arctan2(y, x)
    return lat, lon


def km_to_chord(distance_km: float) -> float:
    """Straight-line distance on the unit sphere of a great-circle distance in km."""
    arc = min(float(distance_km) / EARTH_RADIUS_KM, np.pi)
    return 2.0 * np.sin(arc / 2.0)


def chord_to_km(chord: np.ndarray | float) -> np.ndarray | float:
    """Great-circle distance in km of a straight-line distance on the unit sphere."""
    return 2.0 * np.arcsin(np.clip(np.asarray(chord) / 2.0, 0.0, 1.0)) * EARTH_RADIUS_KM


def _check_refinement(refinement: int) -> int:
    if isinstance(refinement, bool) or int(refinement) != refinement or refinement < 0:
        raise ValueError(
            f"mesh refinement must be a non-negative integer, got {refinement!r}; use e.g. 4 "
            "(2,562 nodes) or 5 (10,242 nodes)"
        )
    return int(refinement)


def _sort_order(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Permutation sorting points by latitude then longitude, with their sorted lat and lon."""
    lat, lon = xyz_to_latlon(xyz)
    order = np.lexsort((np.round(lon, _SORT_DECIMALS), np.round(lat, _SORT_DECIMALS)))
    return order, lat[order], lon[order]


def icosahedral_nodes(refinement: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nodes and edges of an icosphere refined `refinement` times (10 * 4**r + 2 nodes).

    Nodes are sorted by latitude, then longitude, so that contiguous index ranges are
    latitude bands: spatially compact, which keeps sharding and windowed attention cheap.

    Returns (lat_rad, lon_rad, edges) with edges an int64 array (E, 2) of unique undirected
    vertex pairs (i < j) in the sorted node order.
    """
    refinement = _check_refinement(refinement)
    mesh = trimesh.creation.icosphere(subdivisions=refinement)
    order, lat, lon = _sort_order(np.asarray(mesh.vertices))
    new_index = np.empty_like(order)
    new_index[order] = np.arange(len(order))
    edges = np.sort(new_index[np.asarray(mesh.edges_unique)], axis=1).astype(np.int64)
    return lat, lon, edges


def icosahedral_level_edges(refinement: int) -> list[np.ndarray]:
    """Mesh edges of every level 1..refinement, expressed on the sorted level-`refinement` nodes.

    Coarse levels give long edges that carry information far in few message-passing steps.
    trimesh's subdivision appends new vertices after the old ones, so level-r vertices are a
    prefix of level-R vertices; that is checked here, with a nearest-vertex match as fallback.
    Returns one int64 array (E_r, 2) of undirected pairs (i < j) per level, coarsest first.
    """
    refinement = _check_refinement(refinement)
    finest = np.asarray(trimesh.creation.icosphere(subdivisions=refinement).vertices)
    order, _, _ = _sort_order(finest)
    sorted_index = np.empty_like(order)
    sorted_index[order] = np.arange(len(order))
    tree: cKDTree | None = None
    level_edges = []
    for level in range(1, refinement + 1):
        mesh = trimesh.creation.icosphere(subdivisions=level)
        vertices = np.asarray(mesh.vertices)
        if np.allclose(vertices, finest[: len(vertices)], atol=1e-9):
            to_finest = np.arange(len(vertices))
        else:
            tree = tree if tree is not None else cKDTree(finest)
            distance, to_finest = tree.query(vertices)
            if distance.max() > 1e-6:
                raise RuntimeError("icosphere levels are not nested; cannot build multi-scale")
        pairs = sorted_index[to_finest[np.asarray(mesh.edges_unique)]]
        level_edges.append(np.sort(pairs, axis=1).astype(np.int64))
    return level_edges


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
    distance, _ = cKDTree(reference).query(nodes, k=1, distance_upper_bound=radius * (1 + 1e-12))
    return np.isfinite(distance)
