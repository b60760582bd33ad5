"""`squall train` with system.hardware.num_gpus_per_model=2 on 2 gloo ranks, started by
Lightning's own launcher or by torchrun, takes the same optimiser step as one process on the
same batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from storm_sample import REPO, pipeline_overrides

from squall.training.preflight import validate_to_file


def _train(
    inputs, root, devices: int, num_gpus_per_model: int, launcher: str = "lightning"
) -> tuple[dict[str, torch.Tensor], dict]:
    resolved = root / "resolved.yaml"
    overrides = [
        *pipeline_overrides(inputs, root),
        "system.hardware.accelerator=cpu",
        f"system.hardware.devices={devices}",
        f"system.hardware.num_gpus_per_model={num_gpus_per_model}",
        "dataloader.batch_size.training=2",  # per model replica: both runs see the same batch
        "training.limit_train_batches=1",
        "training.lr_schedule.warmup_steps=0",
        "diagnostics.mlflow.enabled=false",
        "diagnostics.plots.enabled=false",
    ]
    validate_to_file("debug", overrides, REPO / "configs/training", resolved)
    command = [sys.executable, "-m", "squall.cli", "train", str(resolved)]
    if launcher == "torchrun":
        command[1:1] = ["-m", "torch.distributed.run", f"--nproc_per_node={devices}"]
    result = subprocess.run(
        command,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    if num_gpus_per_model > 1:
        assert "1 model replica(s) x 2 grid shards" in result.stdout + result.stderr
    weights = torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    return weights, json.loads((root / "training_summary.json").read_text())


@pytest.fixture(scope="module")
def single(storm_inputs, tmp_path_factory):
    return _train(storm_inputs, tmp_path_factory.mktemp("one"), devices=1, num_gpus_per_model=1)


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["lightning", "torchrun"])
def test_two_sharded_ranks_take_the_same_step_as_one_process(
    storm_inputs, single, tmp_path, launcher
):
    weights, summary = single
    sharded, sharded_summary = _train(
        storm_inputs, tmp_path, devices=2, num_gpus_per_model=2, launcher=launcher
    )
    # the validation loss is reduced over the shards too
    assert sharded_summary["best_val_loss"] == pytest.approx(summary["best_val_loss"], rel=1e-5)
    compared = 0
    for name, value in weights.items():
        if value.is_floating_point():
            torch.testing.assert_close(sharded[name], value, rtol=1e-5, atol=1e-7, msg=name)
            compared += 1
    assert compared == len(weights)
