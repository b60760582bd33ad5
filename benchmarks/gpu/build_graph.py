"""Build the anchor problem's graph with squall.graphs and save it as a squall graph file.

The anchor (../../../shared/bench/anemoi) uses anemoi-graphs' multi_scale.yaml recipe on a
regular 1-degree grid with the poles included (181 x 360 = 65,160 points): icosahedral hidden
mesh level 5 (10,242 nodes), cut-off encoder 0.6 (98,160 edges), multi-scale processor levels
1-5 (81,840 edges), 3-NN decoder (195,480 edges). squall builds the same edge sets; the area
weights are cos(latitude) (Voronoi cells are undefined on the duplicated pole points).

Usage: python benchmarks/gpu/build_graph.py OUT.pt [--deg 1] [--level 5]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from squall.graphs.create import create_graph
from squall.graphs.data_nodes import DataNodes
from squall.graphs.io import save_graph


def regular_grid(degrees: float) -> DataNodes:
    """Latitudes 90..-90 inclusive, longitudes 0..360-deg: the anchor's grid, in its order."""
    latitudes = np.linspace(90.0, -90.0, int(round(180 / degrees)) + 1)
    longitudes = np.arange(int(round(360 / degrees))) * degrees
    lat, lon = np.meshgrid(latitudes, longitudes, indexing="ij")
    return DataNodes(lat.ravel(), lon.ravel())


def anchor_recipe(level: int) -> dict:
    return {
        "data": {"area_weights": {"method": "cos-latitude", "norm": "unit-max"}},
        "hidden": {"type": "icosahedral", "refinement": level},
        "encoder": {"type": "cutoff", "cutoff_factor": 0.6},
        "processor": {"type": "multiscale", "levels": list(range(1, level + 1))},
        "decoder": {"type": "knn", "k": 3},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--deg", type=float, default=1.0)
    parser.add_argument("--level", type=int, default=5)
    args = parser.parse_args()
    nodes, recipe = regular_grid(args.deg), anchor_recipe(args.level)
    graph = create_graph(nodes, recipe)
    save_graph(graph, args.out, coordinates_hash=nodes.coordinates_hash, config=recipe)
    counts = {
        f"{s}->{d}": int(graph[(s, r, d)].edge_index.shape[1]) for s, r, d in graph.edge_types
    }
    print(
        json.dumps(
            {"nodes": {n: int(graph[n].num_nodes) for n in graph.node_types}, "edges": counts}
        )
    )


if __name__ == "__main__":
    main()
