"""Reading the graph's node coordinates and edge sets into checked tensors for the networks."""

from __future__ import annotations

import math

import torch
from torch_geometric.data import HeteroData


def node_coordinates(graph: HeteroData, node_set: str) -> torch.Tensor:
    """(nodes, 2) [lat, lon] in radians, checked, as float32."""
    if node_set not in graph.node_types or "x" not in graph[node_set]:
        raise ValueError(
            f"The graph has no coordinates for node set {node_set!r} (graph[{node_set!r}].x); "
            f"its node sets are {graph.node_types}. Build the graph with squall.graphs."
        )
    coordinates = graph[node_set].x
    if coordinates.dim() != 2 or coordinates.shape[1] != 2:
        raise ValueError(
            f"graph[{node_set!r}].x must be (nodes, 2) [lat, lon], got {tuple(coordinates.shape)}."
        )
    if coordinates[:, 0].abs().max() > math.pi / 2 + 1e-4:
        raise ValueError(
            f"graph[{node_set!r}].x latitudes exceed pi/2: the coordinates look like degrees, "
            "the graph contract wants radians."
        )
    return coordinates.float()


def graph_edges(
    graph: HeteroData, edge_set: tuple[str, str, str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(edge_index (2, E) long, edge_attr (E, channels) float32) of one edge set, checked."""
    if edge_set not in graph.edge_types:
        raise ValueError(
            f"The graph has no edge set {edge_set}; it has {graph.edge_types}. "
            "An encoder-processor-decoder needs data->hidden, hidden->hidden and hidden->data."
        )
    store = graph[edge_set]
    if "edge_attr" not in store:
        raise ValueError(f"graph[{edge_set}] has no edge_attr; build the graph with attributes.")
    edge_index, edge_attr = store.edge_index.long(), store.edge_attr.float()
    if edge_attr.dim() == 1:
        edge_attr = edge_attr.unsqueeze(-1)
    if (
        edge_index.dim() != 2
        or edge_index.shape[0] != 2
        or edge_attr.shape[0] != edge_index.shape[1]
    ):
        raise ValueError(
            f"graph[{edge_set}]: edge_index must be (2, E) and edge_attr (E, channels); got "
            f"{tuple(edge_index.shape)} and {tuple(edge_attr.shape)}."
        )
    source_set, _, target_set = edge_set
    for row, node_set in ((0, source_set), (1, target_set)):
        num_nodes = node_coordinates(graph, node_set).shape[0]
        indices = edge_index[row]
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= num_nodes):
            raise ValueError(
                f"graph[{edge_set}].edge_index row {row} points outside the {num_nodes} "
                f"{node_set!r} nodes."
            )
    # Sorted by target once here: chunking and contiguous scatters rely on it.
    order = torch.argsort(edge_index[1], stable=True)
    return edge_index[:, order], edge_attr[order]


def position_features(coordinates: torch.Tensor) -> torch.Tensor:
    """[sin lat, cos lat, sin lon, cos lon]: continuous across the dateline and the poles."""
    latitude, longitude = coordinates[:, 0], coordinates[:, 1]
    return torch.stack([latitude.sin(), latitude.cos(), longitude.sin(), longitude.cos()], dim=-1)
