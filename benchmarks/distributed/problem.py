"""The GPU-speed problem of issue 10, for the distributed benchmarks, at any size.

Graph: a regular grid of `--deg` degrees with the poles, icosahedral hidden mesh `--level`,
cut-off 0.6 encoder, multi-scale processor 1..level, 3-NN decoder, built with squall.graphs
(benchmarks/gpu/build_graph.py's recipe; defaults: 1 degree, level 5). Network: squall's
EncoderProcessorDecoder, 2 input steps x 91 variables in, 82 out; loss: area-weighted MSE
(squall's WeightedLoss). Data are SYNTHETIC: random inputs and a fixed nonlinear function of
them as the target (learnable, so a loss curve falls), the same on every launch for a given
step and model replica. `--deg 10 --level 2 --channels 32 --layers 2` runs on a CPU.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from squall.distributed.grid_sharding import GridSharding
from squall.distributed.groups import ModelGroups
from squall.graphs.create import create_graph
from squall.graphs.io import load_graph, save_graph
from squall.models.encoder_processor_decoder import EncoderProcessorDecoder
from squall.training.losses import WeightedLoss
from squall.training.scalers import Scaler

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gpu"))
from build_graph import anchor_recipe, regular_grid  # noqa: E402


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--graph", type=Path, help="graph file: read, or built and written")
    parser.add_argument("--deg", type=float, default=1.0)
    parser.add_argument("--level", type=int, default=5)
    parser.add_argument("--processor", default="gnn", choices=["gnn", "graphtransformer"])
    parser.add_argument("--channels", type=int, default=512)
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--batch", type=int, default=1, help="samples per model replica")
    parser.add_argument("--precision", default="bf16", choices=["bf16", "fp32"])
    parser.add_argument("--no-checkpointing", action="store_true")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)


INPUT_STEPS, INPUT_VARIABLES, OUTPUT_VARIABLES = 2, 91, 82


def problem_graph(args: argparse.Namespace):
    if args.graph is not None and args.graph.exists():
        return load_graph(args.graph)[0]
    nodes, recipe = regular_grid(args.deg), anchor_recipe(args.level)
    graph = create_graph(nodes, recipe)
    if args.graph is not None:
        save_graph(graph, args.graph, coordinates_hash=nodes.coordinates_hash, config=recipe)
    return graph


def build_network(graph, args: argparse.Namespace, device: torch.device):
    """The same weights on every call and rank (seeded). Unlike a ForecastModel's, the last
    layer is not zero-initialised: every parameter gets a gradient at the first step."""
    torch.manual_seed(0)
    return EncoderProcessorDecoder(
        graph,
        in_channels=INPUT_STEPS * INPUT_VARIABLES,
        out_channels=OUTPUT_VARIABLES,
        hidden_channels=args.channels,
        processor_layers=args.layers,
        processor=args.processor,
        mapper="gnn" if args.processor == "gnn" else "graphtransformer",
        num_heads=args.heads,
        trainable_edge_channels=8,
        gradient_checkpointing=not args.no_checkpointing,
    ).to(device)


def build_loss(graph, device: torch.device) -> WeightedLoss:
    area = Scaler("area", ("grid",), graph["data"].area_weight.float())
    return WeightedLoss("mse", [area]).to(device)


def shard(network, loss: WeightedLoss, groups: ModelGroups) -> GridSharding:
    sharding = GridSharding(network, groups)
    network.grid_sharding = sharding
    loss.grid_shard = sharding
    return sharding


class SyntheticBatches:
    """Batch `step` of model replica `replica`: (x (B, G, 182), target (B, G, 82)), the whole
    grid (a sharded rank slices its points)."""

    def __init__(self, num_points: int, batch: int, device: torch.device) -> None:
        self.num_points, self.batch, self.device = num_points, batch, device
        generator = torch.Generator().manual_seed(123)
        weights = torch.randn(INPUT_VARIABLES, OUTPUT_VARIABLES, generator=generator)
        self.weights = (weights / INPUT_VARIABLES**0.5).to(device)

    def __call__(self, step: int, replica: int) -> tuple[torch.Tensor, torch.Tensor]:
        generator = torch.Generator(device=self.device).manual_seed(1_000 * step + replica)
        shape = (self.batch, self.num_points, INPUT_STEPS * INPUT_VARIABLES)
        x = torch.randn(shape, generator=generator, device=self.device)
        target = (
            torch.tanh(x[..., -INPUT_VARIABLES:] @ self.weights) + 0.5 * x[..., :OUTPUT_VARIABLES]
        )
        return x, target


def training_step(model, loss_fn, optimizer, x, target, precision: str) -> torch.Tensor:
    """forward (bf16 autocast or fp32) + loss + backward + AdamW (none without an optimiser:
    the gradients are kept); the loss, detached."""
    if optimizer is not None:
        optimizer.zero_grad(set_to_none=True)
    with torch.autocast(x.device.type, torch.bfloat16, enabled=precision == "bf16"):
        prediction = model(x)
    loss = loss_fn(prediction[:, None, None], target[:, None, None])
    loss.backward()
    if optimizer is not None:
        optimizer.step()
    return loss.detach()


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(step, warmup: int, steps: int, device: torch.device) -> dict[str, float]:
    """Median wall time of `steps` calls of step(i) after `warmup`, and the peak memory."""
    for index in range(warmup):
        step(index)
    synchronise(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for index in range(warmup, warmup + steps):
        start = time.perf_counter()
        step(index)
        synchronise(device)
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return {"step_ms": 1e3 * statistics.median(times), "peak_gib": peak}


def describe(graph, args: argparse.Namespace, network) -> dict:
    return {
        "data_points": int(graph["data"].x.shape[0]),
        "hidden_nodes": int(graph["hidden"].x.shape[0]),
        "edges": {
            f"{s}->{d}": int(graph[(s, r, d)].edge_index.shape[1]) for s, r, d in graph.edge_types
        },
        "processor": args.processor,
        "channels": args.channels,
        "layers": args.layers,
        "parameters": sum(p.numel() for p in network.parameters()),
        "batch_per_replica": args.batch,
        "precision": args.precision,
        "checkpointing": not args.no_checkpointing,
    }
