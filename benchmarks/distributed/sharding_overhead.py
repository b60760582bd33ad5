"""Issue 9's bar: the step time of the sharding machinery with num_gpus_per_model = 1 against
the plain path, on one device (one process, no torch.distributed needed).

The same network and optimiser alternate between the two paths in rounds (so drift of clocks
and temperature hits both alike); prints one `RESULT {json}` line with the median step time of
each, the overhead in percent, and the largest difference of their outputs on one batch.

Usage: python benchmarks/distributed/sharding_overhead.py [--graph G.pt] [problem options]
       (see problem.py; tiny on a CPU: --deg 10 --level 2 --channels 32 --layers 2)
"""

from __future__ import annotations

import argparse
import json

import torch
from problem import (
    SyntheticBatches,
    add_arguments,
    build_loss,
    build_network,
    describe,
    problem_graph,
    shard,
    time_steps,
    training_step,
)

from squall.distributed.groups import model_groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    graph = problem_graph(args)
    network, loss = build_network(graph, args, device), build_loss(graph, device)
    sharding = shard(network, loss, model_groups(1, 1, 0))
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-4)
    batches = SyntheticBatches(network.num_data_nodes, args.batch, device)
    x, _ = batches(0, 0)
    with torch.no_grad():
        outputs = {}
        for path, installed in (("plain", None), ("machinery", sharding)):
            network.grid_sharding = installed
            outputs[path] = network(x).float()
    difference = float((outputs["plain"] - outputs["machinery"]).abs().max())
    del outputs

    def step_on(installed):
        def step(index: int) -> None:
            network.grid_sharding = loss.grid_shard = installed
            training_step(network, loss, optimizer, *batches(index, 0), args.precision)

        return step

    timings: dict[str, list[dict]] = {"plain": [], "machinery": []}
    for _ in range(args.rounds):
        for path, installed in (("plain", None), ("machinery", sharding)):
            timings[path].append(time_steps(step_on(installed), args.warmup, args.steps, device))
    plain = min(t["step_ms"] for t in timings["plain"])
    machinery = min(t["step_ms"] for t in timings["machinery"])
    result = {
        "benchmark": "sharding_overhead",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "problem": describe(graph, args, network),
        "plain_step_ms": [round(t["step_ms"], 2) for t in timings["plain"]],
        "machinery_step_ms": [round(t["step_ms"], 2) for t in timings["machinery"]],
        "overhead_percent": round(100 * (machinery / plain - 1), 2),
        "peak_gib": {k: max(t["peak_gib"] or 0 for t in v) for k, v in timings.items()},
        "max_output_difference": difference,
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
