"""The ensemble-group equivalence cases: a tiny ensemble forecaster with M members, one batch,
one loss and backward, run whole in one process or with its members, samples and grid spread
over gloo ranks (forked), for the tests to compare."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist
from sharding_cases import (
    AREA,
    BATCH,
    STATISTICS,
    TrainingLoss,
    batch,
    build_model,
    output_scalers,
    whole_task,
)
from sharding_cases import task_config as deterministic_config
from torch.nn.parallel import DistributedDataParallel

from squall.distributed.groups import member_groups, model_groups
from squall.distributed.lightning import shard_task, spread_members
from squall.training.crps import EnsembleLoss
from squall.training.ensemble_forecaster import EnsembleForecaster

MEMBERS = 4
# Processors of each kind of graph use, scored by kernel CRPS kinds and by the energy score
# (which needs whole fields: not with grid shards).
CASES = {
    "gnn": ({"processor": "gnn", "mapper": "gnn", "num_chunks": 2}, "almost_fair_crps"),
    "transformer": ({"processor": "transformer", "num_heads": 2, "window_size": 6}, "fair_crps"),
    "graphtransformer_energy": (
        {"processor": "graphtransformer", "mapper": "graphtransformer", "num_heads": 2},
        "energy",
    ),
}


def build_task(case: str) -> EnsembleForecaster:
    network, loss_kind = CASES[case]
    model = build_model({"noise_channels": 3, **network})
    loss = EnsembleLoss(loss_kind, list(output_scalers().values()))
    config = deterministic_config(ensemble={"members": MEMBERS}) | {"training": {"seed": 7}}
    return EnsembleForecaster(model, config, STATISTICS, loss, AREA)


def whole(case: str) -> tuple[float, dict[str, torch.Tensor]]:
    return whole_task(build_task(case))


def member_worker(
    rank: int, world: int, port: int, layouts: list[tuple[int, int]], out: str
) -> None:
    """Rank `rank` of `world`: for each (num_gpus_per_ensemble, num_gpus_per_model) in
    `layouts`, every case's loss and DDP-averaged gradients on this rank's replica of the batch,
    part of the members and shard of the grid."""
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    results = {}
    for layout in layouts:
        shards = model_groups(layout[1], world, rank)
        members = member_groups(*layout, world, rank)
        for case, (_, loss_kind) in CASES.items():
            if shards.shards > 1 and loss_kind == "energy":
                continue
            task = build_task(case)
            points = slice(None)
            if shards.shards > 1:
                points = shard_task(task, shards).data_points
            if members.parts > 1:
                spread_members(task, members)
            per_replica = BATCH // members.replicas
            rows = slice(members.replica * per_replica, (members.replica + 1) * per_replica)
            sample = batch()
            sample = {"data": sample["data"][rows][:, :, :, points], "time": sample["time"][rows]}
            step = DistributedDataParallel(TrainingLoss(task))  # kept alive: its hooks
            loss = step(sample)  # average the gradients in backward
            loss.backward()
            results[(layout, case)] = (
                loss.item(),
                {name: p.grad.clone() for name, p in task.named_parameters()},
            )
    torch.save(results, Path(out) / f"rank{rank}.pt")
    dist.destroy_process_group()
