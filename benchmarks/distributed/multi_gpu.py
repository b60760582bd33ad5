"""Issue 11: data-parallel and sharded scaling on the GPUs of one host (NCCL; gloo on a CPU).

Launch once per GPU count, the 1-process run first (it writes the references):
    torchrun --nproc_per_node=1 benchmarks/distributed/multi_gpu.py --out DIR [options]
    torchrun --nproc_per_node=2 benchmarks/distributed/multi_gpu.py --out DIR [options]
Each launch with n processes measures, for num_gpus_per_model = 1 (data parallel, n replicas)
and, when n > 1, num_gpus_per_model = n (one model sharded over the n ranks):
  - median step time, samples/s (replicas x batch / step), peak memory of each rank;
  - the first step's loss and gradients (after DDP's average) on the same samples as the 1-GPU
    run: the 1-GPU run saves them, the sharded run compares (relative L2 per tensor);
  - with --curve-steps N, a training run of N steps (sharded over all n ranks, or plain for
    n = 1) on the same batches: the 1-GPU run saves its loss curve, the sharded run compares.
Data are synthetic (problem.py). Prints `RESULT {json}` per measurement, and rank 0 writes
DIR/multi_gpu_<n>.json.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch
import torch.distributed as dist
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
from torch.nn.parallel import DistributedDataParallel

from squall.distributed.groups import model_groups


def report(result: dict, rank: int) -> None:
    if rank == 0:
        print("RESULT " + json.dumps(result), flush=True)


def all_ranks_max(value: float, device: torch.device) -> float:
    if not dist.is_initialized():
        return value
    tensor = torch.tensor([value], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return float(tensor)


class Run:
    """A fresh network, loss, optimiser and batches for one layout (num_gpus_per_model)."""

    def __init__(self, graph, args, device, world: int, rank: int, shards: int) -> None:
        self.args, self.device = args, device
        self.groups = model_groups(shards, world, rank) if world > 1 else None
        self.network = build_network(graph, args, device)
        self.loss = build_loss(graph, device)
        self.points = slice(None)
        if shards > 1:
            self.points = shard(self.network, self.loss, self.groups).data_points
        self.model = (
            DistributedDataParallel(
                self.network, device_ids=[device.index] if device.type == "cuda" else None
            )
            if world > 1
            else self.network
        )
        self.optimizer = torch.optim.AdamW(self.network.parameters(), lr=args.lr)
        self.batches = SyntheticBatches(self.network.num_data_nodes, args.batch, device)
        self.replica = self.groups.replica if self.groups else 0
        self.replicas = self.groups.replicas if self.groups else 1

    def step(self, index: int, update: bool = True) -> torch.Tensor:
        x, target = self.batches(index, self.replica)
        x, target = x[:, self.points], target[:, self.points]
        optimizer = self.optimizer if update else None
        return training_step(self.model, self.loss, optimizer, x, target, self.args.precision)

    def first_step(self) -> tuple[float, dict[str, torch.Tensor]]:
        """Loss and (replica-averaged) gradients of step 0."""
        loss = self.step(0, update=False)
        gradients = {n: p.grad.float().cpu() for n, p in self.network.named_parameters()}
        return float(loss), gradients


def compare_gradients(gradients, reference) -> dict[str, float]:
    errors = {
        name: float((gradients[name] - ref).norm() / ref.norm().clamp_min(1e-30))
        for name, ref in reference.items()
    }
    total = torch.cat([(gradients[n] - r).flatten() for n, r in reference.items()]).norm()
    whole = torch.cat([r.flatten() for r in reference.values()]).norm()
    worst = max(errors, key=errors.get)
    return {
        "global_relative_l2": float(total / whole),
        "worst_tensor": worst,
        "worst_relative_l2": errors[worst],
        "median_relative_l2": float(torch.tensor(list(errors.values())).median()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--curve-steps", type=int, default=0)
    args = parser.parse_args()
    world, rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    args.out.mkdir(parents=True, exist_ok=True)
    if rank == 0 and args.graph is not None and not args.graph.exists():
        problem_graph(args)  # build once, before the others read it
    if world > 1:
        dist.barrier()
    graph = problem_graph(args)
    summary: dict = {"gpus": world, "device": str(device)}
    if device.type == "cuda":
        summary["card"] = torch.cuda.get_device_name(device)
    reference_path = args.out / "first_step_1.pt"
    layouts = [1] if world == 1 else [1, world]
    for shards in layouts:
        run = Run(graph, args, device, world, rank, shards)
        summary.setdefault("problem", describe(graph, args, run.network))
        timing = time_steps(run.step, args.warmup, args.steps, device)
        result = {
            "layout": f"{run.replicas} replica(s) x {shards} shard(s)",
            "num_gpus_per_model": shards,
            "step_ms": round(all_ranks_max(timing["step_ms"], device), 2),
            "samples_per_s": round(
                run.replicas * args.batch / (all_ranks_max(timing["step_ms"], device) / 1e3), 3
            ),
            "peak_gib_per_gpu": None
            if timing["peak_gib"] is None
            else round(all_ranks_max(timing["peak_gib"], device), 3),
        }
        del run
        if world == 1 or shards > 1:  # the same samples as the 1-GPU run: compare
            run = Run(graph, args, device, world, rank, shards)
            loss, gradients = run.first_step()
            if world == 1:
                torch.save({"loss": loss, "gradients": gradients}, reference_path)
            elif reference_path.exists():
                reference = torch.load(reference_path, weights_only=True)
                result["first_step"] = {
                    "loss": loss,
                    "loss_1gpu": reference["loss"],
                    "loss_relative_difference": abs(loss / reference["loss"] - 1),
                    **compare_gradients(gradients, reference["gradients"]),
                }
            del run
        summary[f"gpus_per_model_{shards}"] = result
        report(result, rank)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if args.curve_steps:
        run = Run(graph, args, device, world, rank, layouts[-1])
        curve = [float(run.step(index)) for index in range(args.curve_steps)]
        curve_path = args.out / "loss_curve_1.json"
        entry: dict = {"steps": args.curve_steps, "first": curve[0], "last": curve[-1]}
        if rank == 0:
            (args.out / f"loss_curve_{world}.json").write_text(json.dumps(curve))
        if world > 1 and curve_path.exists():
            reference = json.loads(curve_path.read_text())[: len(curve)]
            differences = [abs(a / b - 1) for a, b in zip(curve, reference, strict=True)]
            entry |= {
                "last_1gpu": reference[-1],
                "max_relative_difference": max(differences),
                "mean_relative_difference": sum(differences) / len(differences),
            }
        summary["loss_curve"] = entry
        report({"loss_curve": entry}, rank)
    one_gpu = args.out / "multi_gpu_1.json"
    if world > 1 and one_gpu.exists():
        single = json.loads(one_gpu.read_text())["gpus_per_model_1"]["samples_per_s"]
        parallel = summary["gpus_per_model_1"]["samples_per_s"]
        summary["data_parallel_efficiency"] = round(parallel / (world * single), 3)
        report({"data_parallel_efficiency": summary["data_parallel_efficiency"]}, rank)
    if rank == 0:
        path = args.out / f"multi_gpu_{world}.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(summary, indent=2))
        os.replace(temporary, path)
    if world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
