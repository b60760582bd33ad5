"""A readable report of a graph: node and edge counts, degrees, unconnected nodes, lengths."""

from __future__ import annotations

import numpy as np
import torch
from torch_geometric.data import HeteroData

from squall.graphs.attributes import edge_attributes
from squall.graphs.spherical import EARTH_RADIUS_KM


def edge_lengths_km(graph: HeteroData, edge_type: tuple[str, str, str]) -> np.ndarray:
    source, _, target = edge_type
    features = edge_attributes(
        graph[source].x, graph[target].x, graph[edge_type].edge_index, length_norm="none"
    )
    return features[:, 0].double().numpy() * EARTH_RADIUS_KM


def _degree_line(label: str, degree: torch.Tensor) -> str:
    values = degree.double()
    return (
        f"    {label} min {int(values.min())}, mean {values.mean():.2f}, "
        f"max {int(values.max())}; {int((degree == 0).sum()):,} nodes without edges"
    )


def _histogram(lengths_km: np.ndarray, bins: int, width: int = 40) -> list[str]:
    counts, edges = np.histogram(lengths_km, bins=bins)
    peak = max(counts.max(), 1)
    return [
        f"    {low:8.1f} - {high:8.1f} km {count:>10,} {'#' * int(round(width * count / peak))}"
        for low, high, count in zip(edges[:-1], edges[1:], counts, strict=True)
    ]


def inspect_graph(graph: HeteroData, bins: int = 10) -> str:
    """Counts per node and edge set, in/out-degree statistics, nodes no edge set touches,
    and a histogram of great-circle edge lengths (km) per edge set."""
    lines = ["nodes:"]
    touched = {
        name: torch.zeros(graph[name].num_nodes, dtype=torch.bool) for name in graph.node_types
    }
    for name in graph.node_types:
        store = graph[name]
        extra = sorted(key for key in store.keys() if key != "x")
        lines.append(f"  {name:<10} {store.num_nodes:>12,}  attributes: {', '.join(extra) or '-'}")
    for edge_type in graph.edge_types:
        source, relation, target = edge_type
        edge_index = graph[edge_type].edge_index
        touched[source][edge_index[0]] = True
        touched[target][edge_index[1]] = True
        in_degree = torch.bincount(edge_index[1], minlength=graph[target].num_nodes)
        out_degree = torch.bincount(edge_index[0], minlength=graph[source].num_nodes)
        attr = graph[edge_type].get("edge_attr")
        lines.append(
            f"edges {source} -{relation}-> {target}: {edge_index.shape[1]:,} "
            f"(edge_attr {tuple(attr.shape) if attr is not None else '-'})"
        )
        lines.append(_degree_line(f"in-degree  of {target}:", in_degree))
        lines.append(_degree_line(f"out-degree of {source}:", out_degree))
        if edge_index.shape[1]:
            lines.append("    edge lengths:")
            lines.extend(_histogram(edge_lengths_km(graph, edge_type), bins))
    lines.append("unconnected nodes (in no edge set):")
    for name, mask in touched.items():
        lines.append(f"  {name:<10} {int((~mask).sum()):>12,}")
    return "\n".join(lines)
