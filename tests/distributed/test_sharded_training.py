"""`squall train` with its ranks grouped, on 2 gloo ranks, takes the same optimiser step as one
process on the same batch: system.hardware.num_gpus_per_model=2 (grid shards; started by
Lightning's own launcher or by torchrun), for the ensemble forecaster
num_gpus_per_ensemble=2 (the members spread) or num_gpus_per_model=2, and grid shards of the
limited-area and the diffusion forecaster."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from storm_sample import REPO, pipeline_overrides

from squall.training.preflight import validate_to_file

ENSEMBLE = ["model.hidden_channels=16", "model.processor_layers=1", "training.max_epochs=1"]


def _train(
    inputs, root, devices: int, hardware: list[str], template: str = "debug", launcher="lightning"
) -> tuple[dict[str, torch.Tensor], dict, str]:
    resolved = root / "resolved.yaml"
    overrides = [
        *pipeline_overrides(inputs, root),
        "system.hardware.accelerator=cpu",
        f"system.hardware.devices={devices}",
        *hardware,
        "dataloader.batch_size.training=2",  # per replica: both runs see the same batch
        "training.limit_train_batches=1",
        "training.limit_val_batches=1",
        "training.lr_schedule.warmup_steps=0",
        "diagnostics.mlflow.enabled=false",
        "diagnostics.plots.enabled=false",
    ]
    validate_to_file(template, overrides, REPO / "configs/training", resolved)
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
    weights = torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    summary = json.loads((root / "training_summary.json").read_text())
    return weights, summary, result.stdout + result.stderr


def _assert_same_step(one, two) -> None:
    (weights, summary, _), (other, other_summary, _) = one, two
    # the validation loss is reduced over the shards (gathered over the members) too
    assert other_summary["best_val_loss"] == pytest.approx(summary["best_val_loss"], rel=1e-5)
    compared = 0
    for name, value in weights.items():
        if value.is_floating_point():
            torch.testing.assert_close(other[name], value, rtol=1e-5, atol=1e-7, msg=name)
            compared += 1
    assert compared == len(weights)


@pytest.fixture(scope="module")
def single(storm_inputs, tmp_path_factory):
    return _train(storm_inputs, tmp_path_factory.mktemp("one"), 1, [])


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["lightning", "torchrun"])
def test_two_sharded_ranks_take_the_same_step_as_one_process(
    storm_inputs, single, tmp_path, launcher
):
    sharded = _train(
        storm_inputs, tmp_path, 2, ["system.hardware.num_gpus_per_model=2"], launcher=launcher
    )
    assert "1 model replica(s) x 2 grid shards" in sharded[2]
    _assert_same_step(single, sharded)


@pytest.fixture(scope="module")
def ensemble_single(storm_inputs, tmp_path_factory):
    return _train(storm_inputs, tmp_path_factory.mktemp("members"), 1, ENSEMBLE, "ensemble_crps")


@pytest.mark.parametrize(
    ("hardware", "layout"),
    [
        (["num_gpus_per_ensemble=2"], "1 data-parallel replica(s) x 2 member parts"),
        (["num_gpus_per_model=2"], "1 model replica(s) x 2 grid shards"),
    ],
)
def test_two_ensemble_ranks_take_the_same_step_as_one_process(
    storm_inputs, ensemble_single, tmp_path, hardware, layout
):
    # the members spread over the ranks, or each member's grid split over them
    hardware = [f"system.hardware.{option}" for option in hardware]
    spread = _train(storm_inputs, tmp_path, 2, [*ENSEMBLE, *hardware], "ensemble_crps")
    assert layout in spread[2]
    _assert_same_step(ensemble_single, spread)


@pytest.mark.parametrize("template", ["lam", "diffusion"])
def test_two_grid_shards_of_a_method_take_the_same_step_as_one_process(
    storm_inputs, tmp_path, template
):
    # the limited-area model's boundary ring and domain weights, cut by shard; the diffusion
    # noise levels and noise the same whatever the sharding
    single = _train(storm_inputs, tmp_path / "one", 1, ENSEMBLE, template)
    hardware = [*ENSEMBLE, "system.hardware.num_gpus_per_model=2"]
    sharded = _train(storm_inputs, tmp_path / "two", 2, hardware, template)
    assert "1 model replica(s) x 2 grid shards" in sharded[2]
    _assert_same_step(single, sharded)
