"""O96 default multi-scale graph, attributes included: squall vs anemoi-graphs, side by side.

Both build the same graph: O96 data nodes (40,320) with spherical Voronoi area weights
(unit-max), icosahedral hidden level 5 (10,242), cut-off encoder 0.6, multi-scale processor
levels 1..5, 3-NN decoder, edge length and direction (unit-std). Each repeat runs both in fresh
processes, alternating, and times the build alone (imports excluded, reported separately).

anemoi-graphs lives in its own throwaway venv (see ../../../shared/bench/anemoi/README.md):
    python benchmarks/graphs/bench_o96_vs_anemoi.py --anemoi-python /tmp/anchor-venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

ANEMOI = r"""
import json, sys, time
t0 = time.perf_counter()
from omegaconf import OmegaConf
from anemoi.graphs.create import GraphCreator
t1 = time.perf_counter()
npz = sys.argv[1]
attrs = {
    "edge_length": {"_target_": "anemoi.graphs.edges.attributes.EdgeLength", "norm": "unit-std"},
    "edge_dirs": {"_target_": "anemoi.graphs.edges.attributes.EdgeDirection", "norm": "unit-std"},
}
def edges(source, target, builder):
    return {"source_name": source, "target_name": target, "edge_builders": [builder],
            "attributes": attrs}
config = {
    "nodes": {
        "data": {
            "node_builder": {"_target_": "anemoi.graphs.nodes.NPZFileNodes", "npz_file": npz},
            "attributes": {"area_weight": {
                "_target_": "anemoi.graphs.nodes.attributes.SphericalAreaWeights",
                "norm": "unit-max", "fill_value": 0}},
        },
        "hidden": {"node_builder": {"_target_": "anemoi.graphs.nodes.TriNodes", "resolution": 5}},
    },
    "edges": [
        edges("data", "hidden", {"_target_": "anemoi.graphs.edges.CutOffEdges",
                                 "cutoff_factor": 0.6}),
        edges("hidden", "hidden", {"_target_": "anemoi.graphs.edges.MultiScaleEdges",
                                   "x_hops": 1, "scale_resolutions": 5}),
        edges("hidden", "data", {"_target_": "anemoi.graphs.edges.KNNEdges",
                                 "num_nearest_neighbours": 3}),
    ],
    "post_processors": [],
}
graph = GraphCreator(OmegaConf.create(config)).create(save_path=None)
t2 = time.perf_counter()
counts = {f"{s}->{d}": int(graph[(s, r, d)].edge_index.shape[1]) for s, r, d in graph.edge_types}
print("RESULT " + json.dumps({"import_s": t1 - t0, "build_s": t2 - t1, "edges": counts}))
"""

SQUALL = r"""
import json, sys, time
t0 = time.perf_counter()
from squall.graphs.create import create_graph
from squall.graphs.data_nodes import load_data_nodes
from squall.graphs.recipe import load_recipe
t1 = time.perf_counter()
graph = create_graph(load_data_nodes(sys.argv[1]), load_recipe(sys.argv[2]))
t2 = time.perf_counter()
counts = {f"{s}->{d}": int(graph[(s, r, d)].edge_index.shape[1]) for s, r, d in graph.edge_types}
print("RESULT " + json.dumps({"import_s": t1 - t0, "build_s": t2 - t1, "edges": counts}))
"""


def run(python: str, script: str, *args: str) -> dict:
    out = subprocess.run(
        [python, "-c", script, *args], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--anemoi-python", default="/tmp/anchor-venv/bin/python")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    import numpy as np

    from squall.graphs.grids import reduced_gaussian_grid

    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "o96.npz"
        lat, lon = reduced_gaussian_grid("o96")
        np.savez(npz, latitudes=lat, longitudes=lon)
        recipe = str(REPO / "configs/training/graph/multi_scale.yaml")
        results: dict[str, list[dict]] = {"anemoi": [], "squall": []}
        for repeat in range(args.repeats):
            results["anemoi"].append(run(args.anemoi_python, ANEMOI, str(npz)))
            results["squall"].append(run(sys.executable, SQUALL, str(npz), recipe))
            print(f"repeat {repeat}: " + json.dumps({k: v[-1] for k, v in results.items()}))
    summary = {
        name: {
            "build_s_median": statistics.median(r["build_s"] for r in runs),
            "import_s_median": statistics.median(r["import_s"] for r in runs),
            "edges": runs[0]["edges"],
        }
        for name, runs in results.items()
    }
    ratio = summary["squall"]["build_s_median"] / summary["anemoi"]["build_s_median"]
    summary["squall_over_anemoi_build"] = ratio
    print("SUMMARY " + json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
