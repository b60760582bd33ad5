"""Issue 9 follow-up: the per-shard edge load of grid shards split by points and by edges
(system.hardware.shard_balance), on a saved graph (e.g. the storm_stretched pipeline's).

A rank's load is the edges its targets compute: decoder edges into its data points, encoder
edges and processor_layers x processor edges into its hidden nodes (grid_sharding.node_loads).
Prints one line per (shards, balance) and one `RESULT {json}` line. No torch.distributed: every
rank's layout is computed from the graph, as each rank does.

Usage: python benchmarks/distributed/shard_balance.py GRAPH.pt [--layers 4] [--shards 2 4]
"""

from __future__ import annotations

import argparse
import json
import statistics

from squall.distributed.grid_sharding import SHARD_BALANCES, shard_layout, shard_loads
from squall.graphs.io import load_graph
from squall.models.encoder_processor_decoder import EncoderProcessorDecoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("graph", help="a graph file from `squall graph create`")
    parser.add_argument("--layers", type=int, default=4, help="processor layers (storm: 4)")
    parser.add_argument("--shards", type=int, nargs="+", default=[2, 4])
    args = parser.parse_args()
    graph, _ = load_graph(args.graph)
    # only the edge sets and sizes matter: the narrowest network that holds them
    network = EncoderProcessorDecoder(
        graph, 1, 1, hidden_channels=4, processor_layers=args.layers, processor="gnn"
    )
    results = []
    for shards in args.shards:
        for balance in SHARD_BALANCES:
            data, hidden = shard_layout(network, shards, balance)
            loads = shard_loads(network, data, hidden)
            row = {
                "shards": shards,
                "balance": balance,
                "loads": loads,
                "max_over_mean": max(loads) / statistics.mean(loads),
                "max_over_min": max(loads) / min(loads),
                "data_points": [end - start for start, end in data],
                "hidden_nodes": [end - start for start, end in hidden],
            }
            results.append(row)
            print(
                f"{shards} shards, {balance:6s}: loads {loads}, max/mean "
                f"{row['max_over_mean']:.3f}, max/min {row['max_over_min']:.3f}, data points "
                f"{row['data_points']}, hidden nodes {row['hidden_nodes']}"
            )
    sizes = {
        "data": network.num_data_nodes,
        "hidden": network.num_hidden_nodes,
        "edges": {
            name: int(getattr(network, f"{name}_edge_index").shape[1])
            for name in ("encoder", "processor", "decoder")
        },
    }
    print("RESULT " + json.dumps({"graph": sizes, "layers": args.layers, "rows": results}))


if __name__ == "__main__":
    main()
