"""PNG of each subgraph's nodes and edges on a longitude-latitude map (no coastline downloads:
the map is the graph itself, drawn on a plain plate carree frame)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from torch_geometric.data import HeteroData


def _segments(graph: HeteroData, edge_type, max_edges: int, seed: int) -> np.ndarray:
    """(E, 2, 2) lon/lat degree segments; edges crossing the date line are split off (dropped)."""
    source, _, target = edge_type
    edge_index = graph[edge_type].edge_index.numpy()
    if edge_index.shape[1] > max_edges:
        keep = np.random.default_rng(seed).choice(edge_index.shape[1], max_edges, replace=False)
        edge_index = edge_index[:, np.sort(keep)]
    start = np.degrees(graph[source].x.double().numpy()[edge_index[0]])[:, ::-1]
    end = np.degrees(graph[target].x.double().numpy()[edge_index[1]])[:, ::-1]
    start[:, 0] = (start[:, 0] + 180) % 360 - 180
    end[:, 0] = (end[:, 0] + 180) % 360 - 180
    short = np.abs(start[:, 0] - end[:, 0]) < 180
    return np.stack([start[short], end[short]], axis=1)


def plot_graph(graph: HeteroData, out_path: str | os.PathLike[str], max_edges: int = 20000) -> Path:
    """One panel per edge set (at most `max_edges` drawn, a random sample), source nodes in
    blue, target nodes in red, written atomically as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    edge_types = list(graph.edge_types)
    if not edge_types:
        raise ValueError("the graph has no edge sets to plot")
    columns = min(3, len(edge_types))
    rows = -(-len(edge_types) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(6 * columns, 3.6 * rows), squeeze=False)
    for axis, edge_type in zip(axes.ravel(), edge_types, strict=False):
        source, relation, target = edge_type
        axis.add_collection(
            LineCollection(_segments(graph, edge_type, max_edges, 0), linewidths=0.2, alpha=0.5)
        )
        for name, colour, size in ((source, "tab:blue", 1.0), (target, "tab:red", 1.5)):
            lonlat = np.degrees(graph[name].x.double().numpy())[:, ::-1]
            lonlat[:, 0] = (lonlat[:, 0] + 180) % 360 - 180
            step = max(1, len(lonlat) // 50000)  # enough points to see the grid, not millions
            axis.scatter(*lonlat[::step].T, s=size, c=colour, linewidths=0, label=name)
        axis.set(xlabel="longitude", ylabel="latitude")  # limits follow the nodes
        axis.set_title(f"{source} -{relation}-> {target}: {graph[edge_type].num_edges:,} edges")
        axis.set_aspect("equal")
        axis.legend(loc="lower left", fontsize=7, markerscale=5)
    for axis in axes.ravel()[len(edge_types) :]:
        axis.set_visible(False)
    figure.tight_layout()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{out_path.name}.", suffix=".png", dir=out_path.parent
    )
    os.close(handle)
    try:
        figure.savefig(temporary, dpi=120)
        os.replace(temporary, out_path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    finally:
        plt.close(figure)
    return out_path
