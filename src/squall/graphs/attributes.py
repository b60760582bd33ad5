"""Node and edge attributes: edge length and direction, area weights of data nodes."""

from __future__ import annotations

import numpy as np
import torch

from squall.graphs.nodes import latlon_to_xyz


def _latlon(points: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    if isinstance(points, torch.Tensor):
        points = points.detach().cpu().numpy()
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"{name} must be (N, 2) [lat, lon] in radians, got {points.shape}")
    return points


def edge_attributes(
    source_latlon_rad: np.ndarray | torch.Tensor,
    target_latlon_rad: np.ndarray | torch.Tensor,
    edge_index: torch.Tensor,
) -> torch.Tensor:
    """Edge features (E, 3) float32: [length, direction east, direction north].

    - length: great-circle length divided by the longest edge of this edge set, in [0, 1];
    - direction: unit vector pointing from the target towards the source, in the target's
      local east/north tangent frame (initial bearing of the great circle), so the features
      do not depend on where on the globe the edge lies. (0, 0) for zero-length edges.
    """
    source = _latlon(source_latlon_rad, "source_latlon_rad")
    target = _latlon(target_latlon_rad, "target_latlon_rad")
    edge_index = torch.as_tensor(edge_index)
    if edge_index.ndim != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"edge_index must have shape (2, E), got {tuple(edge_index.shape)}")
    if edge_index.shape[1] == 0:
        return torch.zeros((0, 3), dtype=torch.float32)
    source_index, target_index = edge_index.cpu().numpy()
    lat_s, lon_s = source[source_index, 0], source[source_index, 1]
    lat_t, lon_t = target[target_index, 0], target[target_index, 1]

    xyz_s = latlon_to_xyz(lat_s, lon_s)
    xyz_t = latlon_to_xyz(lat_t, lon_t)
    # atan2(|a x b|, a.b) is accurate for tiny and near-antipodal angles, unlike arccos(a.b).
    length = np.arctan2(
        np.linalg.norm(np.cross(xyz_s, xyz_t), axis=1), np.sum(xyz_s * xyz_t, axis=1)
    )
    longest = length.max()
    length = length / longest if longest > 0 else length

    # Components of the source position along the target's east and north unit vectors.
    delta_lon = lon_s - lon_t
    east = np.cos(lat_s) * np.sin(delta_lon)
    north = np.cos(lat_t) * np.sin(lat_s) - np.sin(lat_t) * np.cos(lat_s) * np.cos(delta_lon)
    norm = np.hypot(east, north)
    safe = np.where(norm > 1e-12, norm, 1.0)
    direction = np.where(norm[:, None] > 1e-12, np.stack([east, north], axis=1) / safe[:, None], 0)
    features = np.concatenate([length[:, None], direction], axis=1)
    return torch.from_numpy(features.astype(np.float32))


def area_weights(lat_rad: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Area weight (N,) float32 of each data node: cos(latitude), normalised to mean 1.

    Exact for regular lat-lon grids, where a cell's area is proportional to cos(latitude).
    For reduced Gaussian, icosahedral or unstructured grids, spherical Voronoi areas would be
    right instead; that is a later issue.
    """
    if isinstance(lat_rad, torch.Tensor):
        lat_rad = lat_rad.detach().cpu().numpy()
    lat = np.asarray(lat_rad, dtype=np.float64).reshape(-1)
    if len(lat) == 0:
        raise ValueError("area_weights needs at least one latitude; got none")
    weights = np.clip(np.cos(lat), 0.0, None)
    mean = weights.mean()
    if not mean > 0:
        raise ValueError("all data nodes lie on the poles, so cos(latitude) weights are all zero")
    return torch.from_numpy((weights / mean).astype(np.float32))
