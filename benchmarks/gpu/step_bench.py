"""squall's training step on the anemoi anchor problem, on one GPU.

forward + area-weighted MSE + backward + AdamW, batch 1, bf16 autocast, on the graph written by
build_graph.py (1-degree grid, icosahedral level 5, cut-off 0.6, multi-scale 1-5, 3-NN), with
91 variables x 2 input steps in and 82 out. Timed like the anchor (../../../shared/bench/anemoi,
anemoi_step.py): host clock around each synchronised step, median over --steps after --warmup.
The matrix FLOPs of one step are counted with torch's FlopCounterMode (matmuls only, the
checkpointing recompute included) and divided by the median step time.

Usage: python benchmarks/gpu/step_bench.py --graph G.pt --model gt|gnn [--no-ckpt] [--peak]
       [--mlp-hidden-ratio R] (R 3.25 / 1.3: the anchor's parameter count within ~1%)
Prints one `RESULT {json}` line (and `PEAK {json}` with --peak: the bf16 matmul ceiling).
SQUALL_FUSED_KERNELS=0 runs the plain PyTorch path on the GPU, for A/B comparison.
--cuda-graph replays forward and backward from one CUDA graph, then clips the gradients at 1.0
and steps the fused AdamW eagerly, as `training.cuda_graph` does (squall.training.cuda_graph;
the eager rows keep the anchor's foreach AdamW without clipping); run it with
PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True, or the graph's private memory pool reserves
1-2.5 GiB more than the step allocates (NOTES v5a). --memory-phases prints where memory goes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch
from memory_phases import memory_phases
from torch.utils.flop_counter import FlopCounterMode

from squall.graphs.io import load_graph
from squall.models.encoder_processor_decoder import EncoderProcessorDecoder
from squall.training.cuda_graph import CapturedStep, clip_gradient_norm

MODELS = {  # the anchor's two models: (processor/mapper kind, channels, heads, mapper chunks)
    "gt": ("graphtransformer", 1024, 16, 4),
    "gnn": ("gnn", 512, 16, 1),
}


def measure_bf16_peak(size: int = 8192, repeats: int = 50) -> float:
    """FLOP/s of a large bf16 matmul on random data: the card's practical ceiling."""
    a = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    for _ in range(5):
        a @ b
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(repeats):
        start.record()
        a @ b
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return 2 * size**3 / statistics.median(times)


def build(args, graph) -> EncoderProcessorDecoder:
    kind, channels, heads, chunks = MODELS[args.model]
    torch.manual_seed(0)
    model = EncoderProcessorDecoder(
        graph,
        in_channels=args.variables_in * args.multistep,
        out_channels=args.variables_out,
        hidden_channels=args.channels or channels,
        processor_layers=args.layers,
        mlp_hidden_layers=args.mlp_hidden_layers,
        mlp_hidden_ratio=args.mlp_hidden_ratio,
        edge_latent_channels=args.edge_latent_channels,
        processor=kind,
        mapper=kind,
        num_heads=args.heads or heads,
        trainable_node_channels=8,  # as the anchor's node/edge_trainable_parameters
        trainable_edge_channels=8,
        gradient_checkpointing=not args.no_ckpt,
        num_chunks=args.num_chunks or chunks,
    )
    if args.compile:  # experiment: compile each graph block (the Triton kernels stay as they are)
        for module in model.modules():
            if type(module).__name__ in ("GraphTransformerBlock", "GraphMessagePassing"):
                module.compile()
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graph", required=True)
    parser.add_argument("--model", choices=sorted(MODELS), default="gt")
    parser.add_argument("--channels", type=int, default=None)
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--heads", type=int, default=None, help="attention heads (default 16)")
    parser.add_argument("--mlp-hidden-layers", type=int, default=1)
    parser.add_argument(
        "--mlp-hidden-ratio", type=float, default=None, help="blocks' MLP width / channels"
    )
    parser.add_argument(
        "--edge-latent-channels", type=int, default=None, help="edge latent width (channels)"
    )
    parser.add_argument("--no-ckpt", action="store_true")
    parser.add_argument("--num-chunks", type=int, default=None, help="mappers' target chunks")
    parser.add_argument("--compile", action="store_true", help="torch.compile each graph block")
    parser.add_argument(
        "--unfused-edge-hidden",
        action="store_true",
        help="A/B: the GNN's gathers, adds and activation as separate ops, not kernels.edge_hidden",
    )
    parser.add_argument(
        "--edges-x-2c",
        action="store_true",
        help="A/B: the GT's edge projection on every edge (edges x 2C), not at the targets",
    )
    parser.add_argument(
        "--foreach-adamw",
        action="store_true",
        help="A/B: a --cuda-graph row with the anchor's optimiser (foreach AdamW, no clipping)",
    )
    parser.add_argument("--variables-in", type=int, default=91)
    parser.add_argument("--variables-out", type=int, default=82)
    parser.add_argument("--multistep", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--tag", default="")
    parser.add_argument("--peak", action="store_true", help="also measure the bf16 matmul peak")
    parser.add_argument("--profile", type=int, default=0, help="profile N steps (kernel count)")
    parser.add_argument(
        "--cuda-graph", action="store_true", help="capture the whole step as one CUDA graph"
    )
    parser.add_argument(
        "--memory-phases", action="store_true", help="also print MEMORY: bytes around phases"
    )
    args = parser.parse_args()
    if args.unfused_edge_hidden:  # message passing then takes its unfused path
        import squall.models.message_passing as message_passing

        message_passing.fused_activation_name = lambda module: None
    if args.edges_x_2c:  # graph_attention_over_edge_features then projects every edge
        import squall.models.kernels.projected_attention as projected_attention

        projected_attention.takes_projected_route = lambda *_: False
    if not torch.cuda.is_available():
        raise SystemExit("step_bench.py times the GPU path: no CUDA device here")
    torch.backends.cuda.matmul.allow_tf32 = True
    device = torch.device("cuda")
    graph, _ = load_graph(args.graph)
    model = build(args, graph).to(device)
    parameters = sum(p.numel() for p in model.parameters())
    grid = model.num_data_nodes
    area = graph["data"].area_weight.float().to(device)
    area = area / area.mean()
    x = torch.randn(args.batch, grid, args.variables_in * args.multistep, device=device)
    y = torch.randn(args.batch, grid, args.variables_out, device=device)
    # eager: the anchor's optimiser exactly, the default (foreach, not fused) AdamW, no clipping;
    # --cuda-graph: what training.cuda_graph steps, the fused AdamW after clipping at 1.0
    training_optimizer = args.cuda_graph and not args.foreach_adamw
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=0.625e-4, betas=(0.9, 0.95), fused=training_optimizer or None
    )

    def forward_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # autocast's weight-cast cache must be off under capture (its entries die with it)
        with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=not args.cuda_graph):
            out = model(x)
        return ((out.float() - y).square() * area[:, None]).mean()

    def forward_backward(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = forward_loss(x, y)
        loss.backward()
        return loss

    def eager_step() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = forward_backward(x, y)
        optimizer.step()
        return loss

    model.train()
    if args.memory_phases:  # before timing: one extra update, measured phase by phase
        phases = memory_phases(model, optimizer, lambda: forward_loss(x, y))
        print("MEMORY " + json.dumps({"tag": args.tag} | phases), flush=True)
    step = eager_step
    if args.cuda_graph:  # as training.cuda_graph: forward + backward replayed, clip + AdamW eager
        captured = CapturedStep(forward_backward, model.parameters(), [x, y])

        def step() -> torch.Tensor:
            loss = captured(x, y)
            if training_optimizer:
                clip_gradient_norm(optimizer, 1.0)
            optimizer.step()
            return loss

        for _ in range(args.warmup):
            step()
    else:
        for _ in range(args.warmup):
            step()
    torch.cuda.synchronize()
    if not args.cuda_graph:  # a graph's peak happens at capture: keep it in the figure
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        loss = step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    peak_memory = torch.cuda.max_memory_allocated() / 2**30
    # a graph's private pool stays reserved between replays: its reserved bytes are its cost
    peak_reserved = torch.cuda.max_memory_reserved() / 2**30
    # after the timed steps: what a long run holds (the peak above includes warm-up and capture)
    steady_reserved = torch.cuda.memory_reserved() / 2**30
    loss = float(loss.detach())
    if args.profile:
        profile(step, args.profile, median)
    with FlopCounterMode(display=False) as counter:  # counts eager dispatches, not replays
        eager_step()
    matmul_flops = counter.get_total_flops()
    record = {
        "tag": args.tag,
        "model": args.model,
        "kind": MODELS[args.model][0],
        "channels": args.channels or MODELS[args.model][1],
        "layers": args.layers,
        "heads": args.heads or MODELS[args.model][2],
        "mlp_hidden_layers": args.mlp_hidden_layers,
        "mlp_hidden_ratio": args.mlp_hidden_ratio,
        "edge_latent_channels": args.edge_latent_channels,
        "grad_ckpt": not args.no_ckpt,
        "num_chunks": args.num_chunks or MODELS[args.model][3],
        "compile": args.compile,
        "unfused_edge_hidden": args.unfused_edge_hidden,
        "cuda_graph": args.cuda_graph,
        "optimizer": "adamw fused + clip 1.0" if training_optimizer else "adamw foreach",
        "edges_x_2c": args.edges_x_2c,
        "fused_kernels": os.environ.get("SQUALL_FUSED_KERNELS", "1") != "0",
        "batch": args.batch,
        "graph": {
            f"{s}->{d}": int(graph[(s, r, d)].edge_index.shape[1]) for s, r, d in graph.edge_types
        },
        "params": parameters,
        "step_ms_median": round(median * 1e3, 2),
        "step_ms_min": round(min(times) * 1e3, 2),
        "step_ms_max": round(max(times) * 1e3, 2),
        "samples_per_s": round(args.batch / median, 3),
        "peak_mem_gib": round(peak_memory, 3),
        "peak_reserved_gib": round(peak_reserved, 3),
        "steady_reserved_gib": round(steady_reserved, 3),
        "matmul_tflop_per_step": round(matmul_flops / 1e12, 3),
        "matmul_tflops_achieved": round(matmul_flops / median / 1e12, 1),
        "loss": loss,
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "steps": args.steps,
    }
    if args.peak:
        peak = measure_bf16_peak()
        record["bf16_peak_tflops"] = round(peak / 1e12, 1)
        record["fraction_of_peak"] = round(matmul_flops / median / peak, 3)
    print("RESULT " + json.dumps(record), flush=True)


def profile(step, steps: int, median: float) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    torch.cuda.synchronize()
    activities = [ProfilerActivity.CPU, ProfilerActivity.CUDA]
    with torch_profile(activities=activities, record_shapes=True) as prof:
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
    events = [
        e
        for e in prof.key_averages()
        if e.device_type == torch.autograd.DeviceType.CUDA and not e.is_user_annotation
    ]
    kernel_ms = sum(e.self_device_time_total for e in events) / 1e3 / steps
    print(
        "PROFILE "
        + json.dumps(
            {
                "gpu_kernel_ms_per_step": round(kernel_ms, 2),
                "gpu_busy_frac_vs_median": round(kernel_ms / (median * 1e3), 3),
                "kernels_per_step": round(sum(e.count for e in events) / steps),
            }
        ),
        flush=True,
    )
    print(
        prof.key_averages().table(
            sort_by="self_cuda_time_total", row_limit=18, max_name_column_width=50
        )
    )
    # the glue by input shape: which tensors the casts, sums and adds run over
    glue = ("aten::copy_", "aten::sum", "aten::add", "aten::add_", "aten::mul")
    by_shape = [e for e in prof.key_averages(group_by_input_shape=True) if e.key in glue]
    by_shape.sort(key=lambda e: e.self_device_time_total, reverse=True)
    for event in by_shape[:15]:
        ms = event.self_device_time_total / 1e3 / steps
        print(f"GLUE {event.key} {ms:.2f} ms/step x{event.count // steps} {event.input_shapes}")


if __name__ == "__main__":
    main()
