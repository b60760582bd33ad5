"""Training features on the real storm sample with the debug config: curriculum, periodic and
time-limited checkpoints, EMA, early stopping, validation metrics in physical units."""

from __future__ import annotations

import json
import sqlite3

import pytest
import torch
from storm_sample import REPO, pipeline_overrides

from squall.config.resolved import read_resolved
from squall.export.artifact import load_artifact
from squall.export.from_checkpoint import export_checkpoint
from squall.training.preflight import validate_to_file
from squall.training.trainer import train
from squall.training.walltime import TrainingInterrupted

CONFIG_DIR = REPO / "configs/training"


def _resolved(storm_inputs, root, *extra):
    path = root / "resolved.yaml"
    validate_to_file("debug", [*pipeline_overrides(storm_inputs, root), *extra], CONFIG_DIR, path)
    return read_resolved(path)


def test_curriculum_checkpoints_and_ema(storm_inputs, tmp_path):
    resolved = _resolved(
        storm_inputs,
        tmp_path,
        "training.max_epochs=2",
        "training.limit_train_batches=2",
        "task.rollout.start=1",
        "task.rollout.maximum=2",
        "task.rollout.every_n_epochs=1",
        "task.validation_rollout=2",
        "training.checkpoints.every_n_steps=1",
        "training.ema_decay=0.5",
        "training.optimizer.name=ademamix",
    )
    # A last.ckpt left by an earlier run of another config: the new run must replace it (a
    # last-v1.ckpt beside it would leave resumes reading the stale one).
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"an earlier run's")
    best = train(resolved)
    checkpoints = sorted(p.name for p in best.parent.iterdir())
    assert {"best.ckpt", "last.ckpt", "step000001.ckpt", "step000004.ckpt"} <= set(checkpoints)
    assert not [name for name in checkpoints if ".tmp" in name or "-v" in name]
    last = torch.load(best.parent / "last.ckpt", weights_only=True)
    assert last["squall"]["rollout"] == 2  # epoch 1 rolls out 2 steps
    first = torch.load(best.parent / "step000001.ckpt", weights_only=True)
    assert first["squall"]["rollout"] == 1
    # The exported model carries the EMA weights, not the last training weights.
    assert "ema_state_dict" in last
    model, _ = load_artifact(export_checkpoint(best.parent / "last.ckpt", tmp_path / "m"))
    ema = last["ema_state_dict"]
    name = next(k for k in ema if k.endswith("weight") and ema[k].dim() == 2)
    torch.testing.assert_close(model.state_dict()[name], ema[name])
    assert not torch.equal(ema[name], last["state_dict"][f"model.{name}"])


def test_validation_metrics_in_physical_units_reach_mlflow(storm_inputs, tmp_path):
    resolved = _resolved(storm_inputs, tmp_path, "task.validation_rollout=2")
    train(resolved)
    database = sqlite3.connect(tmp_path / "mlflow.db")
    names = {row[0] for row in database.execute("select distinct key from metrics")}
    assert {"val/rmse/msl/6h", "val/rmse/msl/12h", "val/rmse/v_500/12h", "val_loss"} <= names
    msl = database.execute("select value from metrics where key='val/rmse/msl/6h'").fetchone()[0]
    assert 50 < msl < 5000  # Pa: an untrained model is close to persistence (~400 Pa)


def test_time_limit_saves_and_stops(storm_inputs, tmp_path):
    resolved = _resolved(
        storm_inputs,
        tmp_path,
        "training.max_epochs=50",
        "training.limit_train_batches=null",
        "training.time_limit_minutes=0.001",
    )
    with pytest.raises(TrainingInterrupted, match="time limit"):
        train(resolved)
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] < 50  # stopped long before 50 epochs
    state = json.loads((tmp_path / "checkpoints" / "run_state.json").read_text())
    assert state["status"] == "interrupted" and state["step"] == last["global_step"]


def test_early_stopping(storm_inputs, tmp_path):
    resolved = _resolved(
        storm_inputs,
        tmp_path,
        "training.max_epochs=30",
        "training.early_stopping.enabled=true",
        "training.early_stopping.patience=1",
        "training.early_stopping.min_delta=1000",
    )
    train(resolved)
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] < 5  # no improvement of 1000 is possible: stops after patience


def test_zero_optimizer_needs_a_distributed_run(storm_inputs, tmp_path):
    resolved = _resolved(storm_inputs, tmp_path, "training.optimizer.name=zero_adamw")
    with pytest.raises(ValueError, match="needs a distributed run"):
        train(resolved)


def test_resume_fork_warm_start_transfer_and_freeze(storm_inputs, tmp_path):
    first = train(_resolved(storm_inputs, tmp_path / "a", "training.max_epochs=1"))
    last = first.parent / "last.ckpt"
    before = torch.load(last, weights_only=True)
    run_id = before["squall"]["mlflow_run_id"]

    # Resume by MLflow run id: same run, the epoch count continues.
    resolved = _resolved(storm_inputs, tmp_path / "a", "training.max_epochs=2")
    train(resolved, resume=run_id)
    resumed = torch.load(last, weights_only=True)
    assert resumed["epoch"] == before["epoch"] + 1 and resumed["global_step"] == 4
    assert resumed["squall"]["mlflow_run_id"] == run_id

    # Fork: continues from the checkpoint as a new run.
    forked_root = tmp_path / "b"
    train(
        _resolved(storm_inputs, forked_root, "training.max_epochs=3"), resume=str(last), fork=True
    )
    forked = torch.load(forked_root / "checkpoints" / "last.ckpt", weights_only=True)
    assert forked["global_step"] == 6 and forked["squall"]["mlflow_run_id"] != run_id

    # Warm start: weights only, a fresh schedule; a frozen encoder does not move.
    warm_root = tmp_path / "c"
    train(
        _resolved(
            storm_inputs,
            warm_root,
            f"training.initialisation.checkpoint={last}",
            "training.initialisation.freeze=[network.encoder]",
        )
    )
    warm = torch.load(warm_root / "checkpoints" / "last.ckpt", weights_only=True)
    assert warm["global_step"] == 2
    encoder = [k for k in warm["state_dict"] if k.startswith("model.network.encoder.")]
    changed = [
        k
        for k in warm["state_dict"]
        if k.startswith("model.network.processor.")
        and not torch.equal(warm["state_dict"][k], resumed["state_dict"][k])
    ]
    assert encoder and all(
        torch.equal(warm["state_dict"][k], resumed["state_dict"][k]) for k in encoder
    )
    assert changed  # the rest trained


def test_checkpoint_with_other_variables_is_refused_or_transferred(storm_inputs, tmp_path):
    first = train(_resolved(storm_inputs, tmp_path / "a", "data.drop=[v_500]"))
    with pytest.raises(ValueError, match=r"other variables.*only in the data: \['v_500'\]"):
        train(
            _resolved(storm_inputs, tmp_path / "b", f"training.initialisation.checkpoint={first}")
        )
    best = train(
        _resolved(
            storm_inputs,
            tmp_path / "c",
            f"training.initialisation.checkpoint={first}",
            "training.initialisation.mode=transfer",
            "training.initialisation.allow_variable_remap=true",
        )
    )
    summary = json.loads((best.parent.parent / "training_summary.json").read_text())
    report = summary["initialisation"]
    assert report["loaded"] > 0 and report["skipped"]  # the input/output layers did not fit
    with pytest.raises(ValueError, match="same variables in another order|other variables"):
        train(_resolved(storm_inputs, tmp_path / "d"), resume=str(first))


def test_plots_and_profile_are_written(storm_inputs, tmp_path):
    train(
        _resolved(
            storm_inputs, tmp_path, "diagnostics.plots.every_n_epochs=1", "training.max_epochs=2"
        )
    )
    plots = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert plots == [
        "distribution_epoch000.png",
        "distribution_epoch001.png",
        "loss_curves.png",
        "sample_epoch000.png",
        "sample_epoch001.png",
    ]
    profile = json.loads((tmp_path / "profile.json").read_text())
    assert profile["samples_per_second"] > 0 and profile["peak_memory_mib"] > 100
    assert set(profile["median_per_batch"]) == {
        "data_ms",
        "forward_ms",
        "backward_ms",
        "optimizer_ms",
        "step_ms",
    }
    medians = profile["median_per_batch"]
    assert medians["step_ms"] >= medians["forward_ms"] + medians["backward_ms"]
    database = sqlite3.connect(tmp_path / "mlflow.db")
    artifacts = tmp_path / "mlartifacts"
    assert any(p.name == "loss_curves.png" for p in artifacts.rglob("*.png"))
    names = {row[0] for row in database.execute("select distinct key from metrics")}
    assert "profile/samples_per_second" in names


def test_offline_runs_sync_to_another_store(storm_inputs, tmp_path):
    from squall.cli import main

    train(_resolved(storm_inputs, tmp_path / "offline"))
    source = f"sqlite:///{tmp_path / 'offline' / 'mlflow.db'}"
    target = f"sqlite:///{tmp_path / 'server.db'}"
    assert main(["mlflow", "sync", "--from", source, "--to", target]) == 0
    assert main(["mlflow", "sync", "--from", source, "--to", target]) == 0  # nothing twice
    database = sqlite3.connect(tmp_path / "server.db")
    runs = database.execute("select run_uuid from runs").fetchall()
    assert len(runs) == 1
    steps = database.execute("select count(*) from metrics where key='train_loss'").fetchone()
    assert steps[0] == 2  # both steps of the debug run, with their history
    params = dict(database.execute("select key, value from params").fetchall())
    assert params["training.max_epochs"] == "1"
