"""CPU training-step time of each processor x mapper kind on the storm graph (a real graph:
726 data nodes, 493 hidden nodes), at the storm pipeline's small size.

Usage: .venv/bin/python benchmarks/models/step_time.py [results/storm/graph.pt]
Prints a Markdown table: median forward+backward wall time of one batch, over `REPEATS` runs,
all configurations measured round-robin in this one process.
"""

from __future__ import annotations

import statistics
import sys
import time

import torch

from squall.graphs.io import load_graph
from squall.models.encoder_processor_decoder import EncoderProcessorDecoder

BATCH, IN_CHANNELS, OUT_CHANNELS, REPEATS = 4, 16, 6, 10
CONFIGS = [  # (label, processor, mapper, extra settings)
    ("gnn / gnn", "gnn", "gnn", {}),
    ("gnn / gnn, num_chunks=8", "gnn", "gnn", {"num_chunks": 8}),
    ("gnn / gnn, checkpointing", "gnn", "gnn", {"gradient_checkpointing": True}),
    ("graphtransformer / graphtransformer", "graphtransformer", "graphtransformer", {}),
    ("transformer (window 64) / graphtransformer", "transformer", "graphtransformer", {}),
    (
        "gnn / gnn, GatedMLP + RMSNorm",
        "gnn",
        "gnn",
        {
            "layer_kernels": {
                "mlp": {"_target_": "squall.models.layers.GatedMLP"},
                "norm": {"_target_": "torch.nn.RMSNorm"},
            }
        },
    ),
]


def step_seconds(model: torch.nn.Module, x: torch.Tensor) -> float:
    start = time.perf_counter()
    model(x).square().mean().backward()
    return time.perf_counter() - start


def main(graph_path: str) -> None:
    torch.set_num_threads(2)
    graph, _ = load_graph(graph_path)
    num_data = graph["data"].x.shape[0]
    print(
        f"graph {graph_path}: {num_data} data, {graph['hidden'].x.shape[0]} hidden nodes; "
        f"batch {BATCH}, 64 channels, 4 processor layers, fp32, {torch.get_num_threads()} threads"
    )
    print("| processor / mapper | parameters | step median (ms) | vs gnn |")
    print("|---|---|---|---|")
    models, parameters = {}, {}
    for label, processor, mapper, extra in CONFIGS:
        torch.manual_seed(0)
        models[label] = EncoderProcessorDecoder(
            graph,
            IN_CHANNELS,
            OUT_CHANNELS,
            hidden_channels=64,
            processor_layers=4,
            processor=processor,
            mapper=mapper,
            num_heads=4,
            window_size=64,
            **extra,
        )
        parameters[label] = sum(p.numel() for p in models[label].parameters())
    x = torch.randn(BATCH, num_data, IN_CHANNELS)
    times: dict[str, list[float]] = {label: [] for label in models}
    for repeat in range(REPEATS + 1):  # round-robin, so load from elsewhere hits all alike
        for label, model in models.items():
            seconds = step_seconds(model, x)
            if repeat:  # the first round is warm-up
                times[label].append(seconds)
    baseline = statistics.median(times[CONFIGS[0][0]])
    for label in models:
        median = statistics.median(times[label])
        print(
            f"| {label} | {parameters[label]:,} | {median * 1000:.1f} | {median / baseline:.2f} |"
        )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results/storm/graph.pt")
