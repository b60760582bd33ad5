"""The model-sharding equivalence cases: a tiny forecaster, one batch, one loss and backward,
run whole in one process or sharded over gloo ranks (spawned), for the tests to compare."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from scipy.spatial import cKDTree
from tiny_graph import tiny_graph
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch_geometric.data import HeteroData

from squall.distributed.groups import model_groups
from squall.distributed.lightning import shard_task
from squall.models.diffusion import build_forecast_model
from squall.models.interface import ForecastModel
from squall.training.diffusion_forecaster import DiffusionForecaster
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
# Unequal area weights: the grid weighting must survive the split.
AREA = torch.linspace(0.5, 1.5, 37)
# A limited-area model's domain: forced points outside it in every grid shard (of 2 and 4).
INSIDE = torch.ones(37, dtype=torch.bool)
INSIDE[::4] = False
INSIDE[-5:] = False
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


def uneven_graph() -> HeteroData:
    """The tiny graph (37 data points, 17 hidden nodes) with uneven degrees, like a stretched
    mesh: the first third of each target set reads 8 nearest sources, the rest 3."""
    graph = tiny_graph(num_data=37, num_hidden=17)
    positions = {name: graph[name].x.numpy() for name in ("data", "hidden")}
    for edge_type in graph.edge_types:
        source, _, target = edge_type
        points = [
            np.stack([np.cos(p[:, 0]) * np.cos(p[:, 1]), np.cos(p[:, 0]) * np.sin(p[:, 1])], 1)
            for p in (positions[source], positions[target])
        ]
        _, nearest = cKDTree(points[0]).query(points[1], k=8)
        dense = len(points[1]) // 3
        sources = [row[:8] if node < dense else row[:3] for node, row in enumerate(nearest)]
        targets = [np.full(len(row), node) for node, row in enumerate(sources)]
        edge_index = torch.tensor(np.stack([np.concatenate(sources), np.concatenate(targets)]))
        graph[edge_type].edge_index = edge_index
        graph[edge_type].edge_attr = torch.rand(
            edge_index.shape[1], 3, generator=torch.Generator().manual_seed(2)
        )
    return graph


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def build_model(network: dict, graph: HeteroData | None = None, **spec_parts) -> ForecastModel:
    """The tiny forecast model with the `network` options (and other `spec_parts`: a boundary,
    diffusion settings), every parameter drawn at random; on `graph` (its 37 data points) or
    the tiny graph."""
    graph = tiny_graph(num_data=37, num_hidden=17) if graph is None else graph
    graph["data"].area_weight = AREA
    graph["data"].inside = INSIDE
    spec = {
        "variables": VARIABLES,
        "forcing": ["f"],
        "diagnostic": ["d"],
        "computed_forcings": ["cos_local_time", "sin_julian_day"],
        "input_steps": INPUT_STEPS,
        "timestep_seconds": 21600,
        "network": {"hidden_channels": 16, "processor_layers": 2, **network},
    } | spec_parts
    torch.manual_seed(0)
    model = build_forecast_model(graph, spec, STATISTICS)
    for parameter in model.parameters():  # no zero-initialised parts: every gradient counts
        nn.init.normal_(parameter, std=0.3)
    return model


def output_scalers(domain_only: bool = False) -> dict:
    """The area scaler and per-variable weights over the outputs a, b, d (and with
    `domain_only` a limited-area model's interior scaler: 0 outside INSIDE)."""
    outputs = ["a", "b", "d"]
    settings = {"area": {"node_attribute": "area_weight"}, "variable_weights": {"a": 2.0}}
    if domain_only:
        settings["domain"] = {"node_attribute": "interior"}
    return build_scalers(
        settings,
        outputs,
        {key: [values[VARIABLES.index(v)] for v in outputs] for key, values in STATISTICS.items()},
        {"area_weight": AREA, "interior": INSIDE.float()},
    )


def task_config(shard_balance: str = "points", **task) -> dict:
    return {
        "task": {"rollout": {"start": ROLLOUT, "maximum": ROLLOUT}, "validation_rollout": 1} | task,
        "system": {"hardware": {"num_gpus_per_model": 1, "shard_balance": shard_balance}},
    }


def build_task(case: str, shard_balance: str = "points") -> Forecaster:
    """The processor case on the tiny graph (equal degrees); with `shard_balance` "edges", on
    the uneven graph, split by edges."""
    network, loss_settings = CASES[case]
    network = {"gradient_checkpointing": case == "transformer", **network}
    model = build_model(network, uneven_graph() if shard_balance == "edges" else None)
    loss = build_loss(loss_settings, output_scalers())
    return Forecaster(model, task_config(shard_balance), STATISTICS, loss, AREA)


CASE_TASKS = {case: partial(build_task, case) for case in CASES}


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
        if isinstance(self.task, DiffusionForecaster):  # one denoising step, no rollout
            return self.task.denoising_loss(sample)
        return self.task.loss(*self.task._roll_out(sample, ROLLOUT))


def whole_task(task: Forecaster) -> tuple[float, dict[str, torch.Tensor]]:
    """One process, the whole batch and grid (and all members): the reference."""
    loss = TrainingLoss(task)(batch())
    loss.backward()
    return loss.item(), {name: p.grad.clone() for name, p in task.named_parameters()}


def whole(case: str) -> tuple[float, dict[str, torch.Tensor]]:
    return whole_task(build_task(case))


def run_forked(worker, world: int, layouts: list, out: Path) -> list[dict]:
    """`worker` on `world` gloo ranks, forked (they start with squall already imported;
    spawning re-imports it, slowly), and what each rank saved."""
    mp.start_processes(
        worker, args=(world, free_port(), layouts, str(out)), nprocs=world, start_method="fork"
    )
    return [torch.load(Path(out) / f"rank{rank}.pt", weights_only=True) for rank in range(world)]


def assert_matches_one_process(
    ranks: list[dict], key: tuple, ranks_per_replica: int, reference: tuple[float, dict]
) -> None:
    """Each replica's loss is the whole loss on its part of the batch (equal parts): their
    mean is the loss of the whole batch; every rank of a replica has the same loss, and every
    rank's DDP-averaged gradient is the one-process gradient."""
    loss, gradients = reference
    replicas = len(ranks) // ranks_per_replica
    replica_losses = [ranks[r * ranks_per_replica][key][0] for r in range(replicas)]
    assert sum(replica_losses) / replicas == pytest.approx(loss, rel=1e-5), key
    for rank, results in enumerate(ranks):
        rank_loss, rank_gradients = results[key]
        assert rank_loss == replica_losses[rank // ranks_per_replica], key
        assert rank_gradients.keys() == gradients.keys()
        for name, expected in gradients.items():
            assert expected.abs().sum() > 0, name  # a gradient that can be compared
            torch.testing.assert_close(
                rank_gradients[name],
                expected,
                rtol=1e-4,
                atol=1e-6,
                msg=lambda message, n=name: f"{key}, {n}: {message}",
            )


def sharded_worker(
    rank: int,
    world: int,
    port: int,
    layouts: list[int],
    out: str,
    cases: dict[str, Callable[[], Forecaster]] | None = None,
) -> None:
    """Rank `rank` of `world`: for each num_gpus_per_model in `layouts`, every case's loss and
    DDP-averaged gradients on this rank's replica of the batch and shard of the grid. `cases`
    names the task builders (this module's processor cases by default)."""
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    results = {}
    for shards in layouts:
        groups = model_groups(shards, world, rank)
        for case, build in (cases or CASE_TASKS).items():
            task = build()
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
