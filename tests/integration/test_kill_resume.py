"""A training killed with SIGKILL mid-epoch and resumed from its last step checkpoint gives the
same per-step losses as an uninterrupted run, and no checkpoint is left half-written."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import torch
from storm_sample import REPO, pipeline_overrides

from squall.training.preflight import validate_to_file

STEPS = 8  # one epoch of 8 batches of 4 samples; killed after step KILL_AFTER
KILL_AFTER = 3


def _validate(inputs, root: Path) -> Path:
    resolved = root / "resolved.yaml"
    overrides = [
        *pipeline_overrides(inputs, root),
        "training.max_epochs=1",
        f"training.limit_train_batches={STEPS}",
        "training.checkpoints.every_n_steps=1",
        "diagnostics.log_every_n_steps=1",
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
