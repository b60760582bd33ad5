"""Model sharding and data parallelism on CPU (gloo): 2 and 4 processes, each layout of
num_gpus_per_model, give the loss and the gradients of one process on the same samples."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.multiprocessing as mp
from sharding_cases import CASES, sharded_worker, whole


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def reference() -> dict[str, tuple[float, dict[str, torch.Tensor]]]:
    return {case: whole(case) for case in CASES}


@pytest.mark.parametrize(("world", "layouts"), [(2, [2, 1]), (4, [4, 2])])
def test_sharded_runs_match_one_process(reference, tmp_path, world, layouts):
    # fork: the workers start with squall already imported (spawning re-imports it, slowly)
    mp.start_processes(
        sharded_worker,
        args=(world, _free_port(), layouts, str(tmp_path)),
        nprocs=world,
        start_method="fork",
    )
    ranks = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in range(world)]
    for shards in layouts:
        replicas = world // shards
        for case, (loss, gradients) in reference.items():
            # Each replica's loss is the whole grid's loss on its part of the batch (equal
            # parts): their mean is the loss of the whole batch.
            replica_losses = [ranks[r * shards][(shards, case)][0] for r in range(replicas)]
            assert sum(replica_losses) / replicas == pytest.approx(loss, rel=1e-5), (shards, case)
            for rank in range(world):
                rank_loss, rank_gradients = ranks[rank][(shards, case)]
                assert rank_loss == replica_losses[rank // shards]
                assert rank_gradients.keys() == gradients.keys()
                for name, expected in gradients.items():
                    assert expected.abs().sum() > 0, name  # a gradient that can be compared
                    torch.testing.assert_close(
                        rank_gradients[name],
                        expected,
                        rtol=1e-4,
                        atol=1e-6,
                        msg=lambda m, n=name, s=shards, c=case: f"{c}, {s} shards, {n}: {m}",
                    )
