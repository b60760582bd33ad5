"""Data parallel on CPU (torch.distributed with gloo): 2 processes x batch 2 take the same step
as 1 process x batch 4 — each rank reads a disjoint half of the samples — started by
Lightning's own launcher or by torchrun."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from storm_sample import REPO, pipeline_overrides

from squall.training.preflight import validate_to_file


def _train(
    inputs, root, devices: int, launcher: str = "lightning", optimizer: str = "adamw"
) -> dict[str, torch.Tensor]:
    resolved = root / "resolved.yaml"
    overrides = [
        *pipeline_overrides(inputs, root),
        "system.hardware.accelerator=cpu",
        f"system.hardware.devices={devices}",
        f"dataloader.batch_size.training={4 // devices}",
        "training.limit_train_batches=1",
        "training.lr_schedule.warmup_steps=0",
        "diagnostics.mlflow.enabled=false",
        "diagnostics.plots.enabled=false",
        f"training.optimizer.name={optimizer}",
    ]
    validate_to_file("debug", overrides, REPO / "configs/training", resolved)
    command = [sys.executable, "-m", "squall.cli", "train", str(resolved)]
    if launcher == "torchrun":  # torchrun starts the ranks; Lightning joins its world
        command[1:1] = ["-m", "torch.distributed.run", f"--nproc_per_node={devices}"]
    result = subprocess.run(
        command,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    if devices > 1:
        assert f"Starting with {devices} processes" in result.stderr + result.stdout
    return torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def single(storm_inputs, tmp_path_factory):
    return _train(storm_inputs, tmp_path_factory.mktemp("one"), devices=1)


@pytest.mark.parametrize(
    ("launcher", "optimizer"),
    [("lightning", "adamw"), ("torchrun", "adamw"), ("lightning", "zero_adamw")],
)
def test_two_gloo_ranks_take_the_same_step_as_one_process(
    storm_inputs, single, tmp_path, launcher, optimizer
):
    # zero_adamw shards AdamW's state over the two ranks: the update must not change
    parallel = _train(storm_inputs, tmp_path / "two", 2, launcher, optimizer)
    compared = 0
    for name, value in single.items():
        if value.is_floating_point():
            torch.testing.assert_close(parallel[name], value, rtol=1e-5, atol=1e-7)
            compared += 1
    assert compared == len(single)
