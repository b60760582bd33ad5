"""The model-sharding equivalence cases: a tiny forecaster, one batch, one loss and backward,
run whole in one process or sharded over gloo ranks (spawned), for the tests to compare."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist
from tiny_graph import tiny_graph
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from squall.distributed.groups import model_groups
from squall.distributed.lightning import shard_task
from squall.models.interface import ForecastModel
from squall.training.forecaster import Forecaster
from squall.training.losses import build_loss
from squall.training.scalers import build_scalers

BATCH, INPUT_STEPS, ROLLOUT = 4, 2, 2
VARIABLES = ["a", "b", "f", "d"]
STATISTICS = {
    "mean": [100.0, -3.0, 5.0, 1.0],
    "stdev": [10.0, 2.0, 1.0, 0.5],
    "tendency_stdev": [1.0, 0.5, 0.2, 0.1],
}
# Each processor kind, with the options whose sharding differs: chunked mappers, trainable
# edges, checkpointing (which recomputes the head exchange in backward), the loss variants.
CASES = {
    "gnn": (
        {"processor": "gnn", "mapper": "gnn", "num_chunks": 2, "trainable_edge_channels": 2},
        {"name": "mse", "scalers": ["area", "variable_weights"]},
    ),
    "graphtransformer": (
        {"processor": "graphtransformer", "mapper": "graphtransformer", "num_heads": 2},
        {"name": "huber", "scalers": ["variable_weights"]},  # uniform over the grid
    ),
    "transformer": (
        {"processor": "transformer", "num_heads": 4, "window_size": 6},
        {"name": "mae", "scalers": ["area"]},
    ),
}


def build_task(case: str) -> Forecaster:
    network, loss_settings = CASES[case]
    graph = tiny_graph(num_data=37, num_hidden=17)
    # Unequal area weights: the grid weighting must survive the split.
    graph["data"].area_weight = torch.linspace(0.5, 1.5, 37)
    spec = {
        "variables": VARIABLES,
        "forcing": ["f"],
        "diagnostic": ["d"],
        "computed_forcings": ["cos_local_time", "sin_julian_day"],
        "input_steps": INPUT_STEPS,
        "timestep_seconds": 21600,
        "network": {
            "hidden_channels": 16,
            "processor_layers": 2,
            "gradient_checkpointing": case == "transformer",
            **network,
        },
    }
    torch.manual_seed(0)
    model = ForecastModel(graph, spec, STATISTICS)
    for parameter in model.parameters():  # no zero-initialised parts: every gradient counts
        nn.init.normal_(parameter, std=0.3)
    outputs = ["a", "b", "d"]
    scalers = build_scalers(
        {"area": {"node_attribute": "area_weight"}, "variable_weights": {"a": 2.0}},
        outputs,
        {key: [values[VARIABLES.index(v)] for v in outputs] for key, values in STATISTICS.items()},
        {"area_weight": graph["data"].area_weight},
    )
    config = {
        "task": {"rollout": {"start": ROLLOUT, "maximum": ROLLOUT}, "validation_rollout": 1},
        "system": {"hardware": {"num_gpus_per_model": 1}},
    }
    loss = build_loss(loss_settings, scalers)
    return Forecaster(model, config, STATISTICS, loss, graph["data"].area_weight)


def batch() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    steps = INPUT_STEPS + ROLLOUT
    mean = torch.tensor(STATISTICS["mean"])
    stdev = torch.tensor(STATISTICS["stdev"])
    data = mean + stdev * torch.randn(BATCH, steps, 1, 37, len(VARIABLES), generator=generator)
    time = (
        820_000_000
        + 21600 * torch.arange(steps).repeat(BATCH, 1)
        + 3600 * torch.arange(BATCH).unsqueeze(1)
    )
    return {"data": data, "time": time}


class TrainingLoss(nn.Module):
    """The task's training loss as a module's forward, so that DDP can wrap it."""

    def __init__(self, task: Forecaster) -> None:
        super().__init__()
        self.task = task

    def forward(self, sample: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.task.loss(*self.task._roll_out(sample, ROLLOUT))


def whole(case: str) -> tuple[float, dict[str, torch.Tensor]]:
    """One process, the whole batch and grid: the reference."""
    task = build_task(case)
    loss = TrainingLoss(task)(batch())
    loss.backward()
    return loss.item(), {name: p.grad.clone() for name, p in task.named_parameters()}


def sharded_worker(rank: int, world: int, port: int, layouts: list[int], out: str) -> None:
    """Rank `rank` of `world`: for each num_gpus_per_model in `layouts`, every case's loss and
    DDP-averaged gradients on this rank's replica of the batch and shard of the grid."""
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    results = {}
    for shards in layouts:
        groups = model_groups(shards, world, rank)
        for case in CASES:
            task = build_task(case)
            sharding = shard_task(task, groups)
            per_replica = BATCH // groups.replicas
            sample = batch()
            rows = slice(groups.replica * per_replica, (groups.replica + 1) * per_replica)
            sample = {
                "data": sample["data"][rows][:, :, :, sharding.data_points],
                "time": sample["time"][rows],
            }
            step = DistributedDataParallel(TrainingLoss(task))
            loss = step(sample)
            loss.backward()
            results[(shards, case)] = (
                loss.item(),
                {name: p.grad.clone() for name, p in task.named_parameters()},
            )
    torch.save(results, Path(out) / f"rank{rank}.pt")
    dist.destroy_process_group()
