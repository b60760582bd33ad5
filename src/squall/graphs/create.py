"""Build the encoder-processor-decoder graph of a (regional or global) data grid."""

from __future__ import annotations

import difflib
from typing import Any

import numpy as np
import torch
from torch_geometric.data import HeteroData

from squall.graphs.attributes import area_weights, edge_attributes
from squall.graphs.edges import (
    cutoff_edges,
    knn_edges,
    multiscale_mesh_edges,
    reference_distance,
)
from squall.graphs.nodes import (
    chord_to_km,
    icosahedral_level_edges,
    icosahedral_nodes,
    latlon_to_xyz,
    restrict_to_area,
)

DEFAULT_GRAPH_CONFIG: dict[str, Any] = {
    "mesh_refinement": 5,
    "margin_km": 300.0,
    "encoder_cutoff_factor": 0.6,
    "decoder_knn": 3,
    "max_neighbours": 64,
}

ENCODER = ("data", "to", "hidden")
PROCESSOR = ("hidden", "to", "hidden")
DECODER = ("hidden", "to", "data")


def _data_coordinates(latitudes_deg: np.ndarray, longitudes_deg: np.ndarray) -> np.ndarray:
    lat = np.asarray(latitudes_deg, dtype=np.float64)
    lon = np.asarray(longitudes_deg, dtype=np.float64)
    if lat.ndim != 1 or lat.shape != lon.shape or len(lat) < 2:
        raise ValueError(
            "latitudes and longitudes must be 1-D arrays of equal length with at least two "
            f"grid points, got shapes {lat.shape} and {lon.shape}; flatten 2-D grids first"
        )
    if not (np.isfinite(lat).all() and np.isfinite(lon).all()):
        raise ValueError("the grid coordinates contain NaN or inf; fix the dataset coordinates")
    if np.abs(lat).max() > 90.0:
        raise ValueError(
            f"latitudes must lie in [-90, 90] degrees, found {np.abs(lat).max():.3f}; are "
            "latitudes and longitudes swapped, or given in radians?"
        )
    return np.deg2rad(np.stack([lat, lon], axis=1))


def _check_config(config: dict[str, Any]) -> None:
    for key in ("mesh_refinement", "decoder_knn", "max_neighbours"):
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"graph config {key} must be a positive integer, got {value!r}")
    for key in ("margin_km", "encoder_cutoff_factor"):
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise ValueError(f"graph config {key} must be a positive number, got {value!r}")


def build_graph(
    latitudes_deg: np.ndarray,
    longitudes_deg: np.ndarray,
    *,
    mesh_refinement: int = 5,
    margin_km: float = 300.0,
    encoder_cutoff_factor: float = 0.6,
    decoder_knn: int = 3,
    max_neighbours: int = 64,
) -> HeteroData:
    """Graph with node sets "data" (the grid) and "hidden" (icosahedral mesh near the grid).

    Edge sets: data->hidden by cut-off radius (encoder), hidden->hidden multi-scale mesh edges
    of levels 1..mesh_refinement (processor), hidden->data by k nearest neighbours (decoder).
    Data nodes keep the dataset's grid order; hidden nodes are sorted by latitude, longitude.
    """
    config = dict(
        mesh_refinement=mesh_refinement,
        margin_km=margin_km,
        encoder_cutoff_factor=encoder_cutoff_factor,
        decoder_knn=decoder_knn,
        max_neighbours=max_neighbours,
    )
    _check_config(config)
    data_latlon = _data_coordinates(latitudes_deg, longitudes_deg)
    data_xyz = latlon_to_xyz(data_latlon[:, 0], data_latlon[:, 1])

    mesh_lat, mesh_lon, _ = icosahedral_nodes(mesh_refinement)
    keep = restrict_to_area(mesh_lat, mesh_lon, data_latlon[:, 0], data_latlon[:, 1], margin_km)
    if keep.sum() < 2:
        raise ValueError(
            f"only {int(keep.sum())} mesh nodes lie within margin_km={margin_km} km of the data "
            "grid; increase margin_km or mesh_refinement"
        )
    hidden_latlon = np.stack([mesh_lat[keep], mesh_lon[keep]], axis=1)
    hidden_xyz = latlon_to_xyz(hidden_latlon[:, 0], hidden_latlon[:, 1])

    try:
        encoder_index = cutoff_edges(data_xyz, hidden_xyz, encoder_cutoff_factor, max_neighbours)
    except ValueError as error:
        radius_km = chord_to_km(encoder_cutoff_factor * reference_distance(hidden_xyz))
        raise ValueError(
            f"encoder edges (data -> hidden): {error}. Hidden nodes are kept up to "
            f"margin_km={margin_km} km from the data grid, but the encoder reaches only "
            f"{radius_km:.0f} km (encoder_cutoff_factor={encoder_cutoff_factor} x the mesh "
            "spacing): raise encoder_cutoff_factor, lower margin_km, or use a coarser "
            f"mesh_refinement (now {mesh_refinement})."
        ) from error
    if decoder_knn > len(hidden_xyz):
        raise ValueError(
            f"decoder_knn={decoder_knn} but only {len(hidden_xyz)} hidden nodes were kept; "
            "lower decoder_knn or increase margin_km / mesh_refinement"
        )
    decoder_index = knn_edges(hidden_xyz, data_xyz, decoder_knn)
    processor_index = multiscale_mesh_edges(icosahedral_level_edges(mesh_refinement), keep)

    # Sanity checks a user would otherwise discover as a silently blind part of the model.
    encoder_in = torch.bincount(encoder_index[1], minlength=len(hidden_xyz))
    decoder_in = torch.bincount(decoder_index[1], minlength=len(data_xyz))
    if (encoder_in == 0).any() or (decoder_in != decoder_knn).any():
        raise RuntimeError("internal error: encoder or decoder edges do not cover every node")

    graph = HeteroData()
    graph["data"].x = torch.from_numpy(data_latlon.astype(np.float32))
    graph["data"].area_weight = area_weights(data_latlon[:, 0])
    graph["hidden"].x = torch.from_numpy(hidden_latlon.astype(np.float32))
    for edge_type, source, target, edge_index in (
        (ENCODER, data_latlon, hidden_latlon, encoder_index),
        (PROCESSOR, hidden_latlon, hidden_latlon, processor_index),
        (DECODER, hidden_latlon, data_latlon, decoder_index),
    ):
        graph[edge_type].edge_index = edge_index
        graph[edge_type].edge_attr = edge_attributes(source, target, edge_index)
    return graph


def resolve_graph_config(config: dict[str, Any] | None) -> dict[str, Any]:
    """The full graph config: `config` over the defaults; unknown keys raise with a hint."""
    config = dict(config or {})
    for key in config:
        if key not in DEFAULT_GRAPH_CONFIG:
            close = difflib.get_close_matches(str(key), DEFAULT_GRAPH_CONFIG, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"unknown graph config key {key!r}.{hint} Valid keys: "
                f"{', '.join(DEFAULT_GRAPH_CONFIG)}"
            )
    resolved = {**DEFAULT_GRAPH_CONFIG, **config}
    _check_config(resolved)
    return resolved


def build_graph_from_config(
    latitudes_deg: np.ndarray, longitudes_deg: np.ndarray, config: dict[str, Any] | None
) -> HeteroData:
    """`build_graph` with its keyword arguments taken from a plain dict (defaults if absent)."""
    return build_graph(latitudes_deg, longitudes_deg, **resolve_graph_config(config))
