"""Scale: the multi-scale graph of an o1280 grid (6,599,680 points) with hidden level 7
(163,842 nodes), attributes included. Prints the build time per stage and the peak RSS.

    python benchmarks/graphs/bench_o1280.py [--grid o1280] [--refinement 7]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default="o1280")
    parser.add_argument("--refinement", type=int, default=7)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    from squall.graphs.create import create_graph
    from squall.graphs.data_nodes import load_data_nodes
    from squall.graphs.recipe import load_recipe

    recipe = load_recipe(REPO / "configs/training/graph/multi_scale.yaml")
    recipe = recipe.model_copy(
        update={"hidden": recipe.hidden.model_copy(update={"refinement": args.refinement})}
    )
    recipe = recipe.model_copy(
        update={"processor": recipe.processor.model_copy(update={"levels": None})}
    )
    start = time.perf_counter()
    data = load_data_nodes(args.grid)
    grid_s = time.perf_counter() - start
    graph = create_graph(data, recipe)
    total_s = time.perf_counter() - start
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    result = {
        "grid": args.grid,
        "refinement": args.refinement,
        "nodes": {name: int(graph[name].num_nodes) for name in graph.node_types},
        "edges": {f"{s}->{d}": int(graph[(s, r, d)].num_edges) for s, r, d in graph.edge_types},
        "grid_s": round(grid_s, 1),
        "total_s": round(total_s, 1),
        "peak_rss_gib": round(peak_gib, 2),
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
