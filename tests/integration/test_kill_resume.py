"""A training killed with SIGKILL mid-epoch, or stopped by a wall-time signal, and resumed gives
the same per-step losses and weights as an uninterrupted run; no checkpoint is left half-written."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from storm_sample import REPO, pipeline_overrides

from squall.training.callbacks import FINAL, LAST
from squall.training.preflight import validate_to_file
from squall.training.walltime import (
    CHECKPOINT_KEY,
    INTERRUPTED_EXIT_CODE,
    RUN_STATE,
    resumable_checkpoint,
    write_run_state,
)

STEPS = 8  # one epoch of 8 batches of 4 samples; killed after step KILL_AFTER
KILL_AFTER = 3


def _validate(inputs, root: Path, extra: list[str] | None = None) -> Path:
    resolved = root / "resolved.yaml"
    overrides = [
        *pipeline_overrides(inputs, root),
        "training.max_epochs=1",
        f"training.limit_train_batches={STEPS}",
        "training.checkpoints.every_n_steps=1",
        "diagnostics.log_every_n_steps=1",
        *(extra or []),
    ]
    validate_to_file("debug", overrides, REPO / "configs/training", resolved)
    return resolved


def _squall(*args: str) -> subprocess.Popen:
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "squall.cli", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _losses(root: Path) -> dict[int, float]:
    """train_loss by step (the last value logged for a step wins: a resumed run logs again)."""
    database = sqlite3.connect(root / "mlflow.db")
    rows = database.execute(
        "select step, value from metrics where key='train_loss' order by timestamp"
    ).fetchall()
    return {int(step): value for step, value in rows}


def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(storm_inputs, tmp_path):
    straight = _validate(storm_inputs, tmp_path / "straight")
    assert _squall("train", str(straight)).wait(timeout=600) == 0

    killed_root = tmp_path / "killed"
    killed = _validate(storm_inputs, killed_root)
    process = _squall("train", str(killed))
    target = killed_root / "checkpoints" / f"step{KILL_AFTER:06d}.ckpt"
    deadline = time.monotonic() + 600
    while not target.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()

    # Every checkpoint on disk is complete (writes go to a temporary file, then rename).
    for path in (killed_root / "checkpoints").glob("*.ckpt"):
        torch.load(path, weights_only=True)

    resume = _squall("train", str(killed), "--resume", str(target))
    assert resume.wait(timeout=600) == 0, resume.stderr.read()[-3000:]

    expected, got = _losses(tmp_path / "straight"), _losses(killed_root)
    # Steps from the resume point on were all logged again by the resumed run. (An earlier
    # step's loss may be missing: the kill can land between its checkpoint and its log line.)
    resumed_steps = [step for step in expected if step >= KILL_AFTER]
    assert len(resumed_steps) == STEPS - KILL_AFTER and set(resumed_steps) <= set(got)
    for step in set(expected) & set(got):
        assert abs(expected[step] - got[step]) <= 1e-6 * max(1.0, abs(expected[step])), step
    final = torch.load(tmp_path / "straight" / "checkpoints" / "last.ckpt", weights_only=True)
    again = torch.load(killed_root / "checkpoints" / "last.ckpt", weights_only=True)
    for name, value in final["state_dict"].items():
        torch.testing.assert_close(again["state_dict"][name], value, rtol=0, atol=1e-6)


def _wait_for(path: Path, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 600
    while not path.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before the signal: " + process.stderr.read()


def _state(root: Path) -> dict:
    return json.loads((root / "checkpoints" / RUN_STATE).read_text())


@pytest.mark.parametrize("ranks", [1, 2])
def test_walltime_signal_stops_every_rank_and_auto_resume_continues(storm_inputs, tmp_path, ranks):
    """SIGUSR1 (what Slurm sends before the time limit) to rank 0 alone: all ranks stop after
    the same batch, last.ckpt is saved, exit 75; `--resume auto` continues to the same weights
    as an uninterrupted run; a completed run or another config starts afresh."""
    extra = ["system.hardware.accelerator=cpu", f"system.hardware.devices={ranks}"]
    extra += ["training.max_epochs=3", "training.limit_train_batches=4"]
    straight_root = tmp_path / "straight"
    straight = _validate(storm_inputs, straight_root, extra)
    assert _squall("train", str(straight)).wait(timeout=600) == 0

    root = tmp_path / "stopped"
    resolved = _validate(storm_inputs, root, extra)
    process = _squall("train", str(resolved), "--resume", "auto")
    _wait_for(root / "checkpoints" / RUN_STATE, process)
    os.kill(process.pid, signal.SIGUSR1)
    assert process.wait(timeout=600) == INTERRUPTED_EXIT_CODE, process.stderr.read()[-3000:]
    assert "--resume auto" in process.stderr.read()
    stopped = _state(root)
    assert stopped["status"] == "interrupted" and 0 < stopped["step"] < 12
    assert not (root / FINAL).exists()
    summary = json.loads((root / "training_summary.json").read_text())
    assert summary["interrupted"] == "received SIGUSR1"

    resumed = _squall("train", str(resolved), "--resume", "auto")
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()[-3000:]
    summary = json.loads((root / "training_summary.json").read_text())
    assert summary["resumed_from"].endswith("last.ckpt") and summary["steps"] == 12
    assert _state(root)["status"] == "completed"
    final = torch.load(straight_root / FINAL, weights_only=True)["state_dict"]
    again = torch.load(root / FINAL, weights_only=True)["state_dict"]
    for name, value in final.items():
        torch.testing.assert_close(again[name], value, rtol=0, atol=1e-6)

    # A completed run is not continued: `auto` starts afresh.
    assert resumable_checkpoint(root / "checkpoints", stopped["config"]) is None


def test_auto_resume_takes_only_an_unfinished_run_of_the_same_config(tmp_path):
    torch.save({CHECKPOINT_KEY: {"config": "abc"}}, tmp_path / LAST)
    assert resumable_checkpoint(tmp_path, "abc") is None  # no state: never started here
    for status, config, expected in [
        ("interrupted", "abc", tmp_path / LAST),
        ("running", "abc", tmp_path / LAST),  # killed without a signal: last.ckpt is the best bet
        ("completed", "abc", None),
        ("interrupted", "another config", None),
    ]:
        write_run_state(tmp_path, status, config, step=3)
        assert resumable_checkpoint(tmp_path, "abc") == expected, (status, config)
    # A run of this config killed before its first last.ckpt: the file there is another run's.
    torch.save({CHECKPOINT_KEY: {"config": "older config"}}, tmp_path / LAST)
    write_run_state(tmp_path, "running", "abc", step=0)
    assert resumable_checkpoint(tmp_path, "abc") is None
    (tmp_path / LAST).unlink()
    write_run_state(tmp_path, "interrupted", "abc", step=3)
    assert resumable_checkpoint(tmp_path, "abc") is None
