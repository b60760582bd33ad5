"""Jobs that outlive their wall time: stop cleanly, and let the next job continue.

A Slurm job asks for a signal before its time limit (`--signal=USR1@300`); a run can also set
its own limit (`training.time_limit_minutes`). Either way every rank stops after the same
batch, last.ckpt is written, and checkpoints/run_state.json says `interrupted`. The next
`squall train --resume auto` of the same config continues from there; a completed run, or one
of another config, starts afresh. On completion the chosen checkpoint is copied to model.ckpt
(what the pipeline's train rule promises) and the state says `completed`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from squall.training.callbacks import LAST

RUN_STATE = "run_state.json"
CHECKPOINT_KEY = "squall_run"  # in every checkpoint: the fingerprint of the config that wrote it
INTERRUPTED_EXIT_CODE = 75  # EX_TEMPFAIL: "try again", which is what the caller should do


class TrainingInterrupted(Exception):
    """Raised after a clean stop for wall time: last.ckpt is saved, the run is resumable."""

    def __init__(self, reason: str, step: int, checkpoint: Path) -> None:
        super().__init__(
            f"training stopped at step {step} ({reason}); saved {checkpoint}. Run the same "
            "command with --resume auto (the pipeline does) to continue from there"
        )
        self.reason, self.step, self.checkpoint = reason, step, checkpoint


def config_fingerprint(resolved: dict[str, Any]) -> str:
    """Identity of a resolved config: a resume continues only a run of exactly this config."""
    text = json.dumps(resolved, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def write_run_state(directory: Path, status: str, fingerprint: str, step: int) -> None:
    state = {"status": status, "config": fingerprint, "step": step, "time": time.time()}
    temporary = directory / f".{RUN_STATE}.tmp-{os.getpid()}"
    temporary.write_text(json.dumps(state, indent=2))
    os.replace(temporary, directory / RUN_STATE)


def read_run_state(directory: Path) -> dict[str, Any] | None:
    path = directory / RUN_STATE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as error:  # written atomically, so only a hand edit gets here
        raise ValueError(f"{path} is not valid JSON ({error}); delete it to start afresh") from None


def resumable_checkpoint(directory: Path, fingerprint: str) -> Path | None:
    """last.ckpt of an unfinished run (interrupted, or killed while running) of this config.

    The checkpoint itself must say it belongs to this config: a run killed before it wrote its
    first last.ckpt leaves an older run's file there, which must not be taken for its own."""
    state = read_run_state(directory)
    last = directory / LAST
    if state is None or not last.is_file():
        return None
    if state["status"] == "completed" or state["config"] != fingerprint:
        return None
    # mmap: the tensors are not read, only the small dictionary around them
    checkpoint = torch.load(last, map_location="cpu", weights_only=True, mmap=True)
    if checkpoint.get(CHECKPOINT_KEY, {}).get("config") != fingerprint:
        return None
    return last


def finish_run(directory: Path, chosen: Path, target: Path, fingerprint: str, step: int) -> None:
    """Copy the chosen checkpoint to `target` (atomically) and mark the run completed."""
    temporary = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.copyfile(chosen, temporary)
    os.replace(temporary, target)
    write_run_state(directory, "completed", fingerprint, step)


class WallTimeGuard(Callback):
    """Stops every rank after the same batch once a signal came or the time limit passed,
    writing last.ckpt first. Ranks agree through one boolean reduction per batch."""

    def __init__(
        self,
        directory: Path,
        fingerprint: str,
        minutes: float | None = None,
        signal_name: str | None = "SIGUSR1",
    ) -> None:
        self.directory = Path(directory)
        self.fingerprint = fingerprint
        self.seconds = minutes * 60 if minutes else None
        self.signal = getattr(signal, signal_name) if signal_name else None
        self.started = time.monotonic()
        self.signalled = False
        self.reason: str | None = None
        # Set at once: a signal that comes while the data and model are still being set up
        # would otherwise end the process (the default action). Only the main thread may set
        # handlers (not the case in some notebook or test runners).
        if self.signal is not None and threading.current_thread() is threading.main_thread():
            signal.signal(self.signal, self._on_signal)

    def _on_signal(self, number: int, frame: Any) -> None:
        self.signalled = True  # acted on after the current batch, never mid-step

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.started = time.monotonic()
        # Written only now: every rank has already decided what it resumes from.
        if trainer.is_global_zero:
            write_run_state(self.directory, "running", self.fingerprint, trainer.global_step)

    def _local_reason(self) -> str | None:
        if self.signalled:
            return f"received {self.signal.name}"
        if self.seconds is not None and time.monotonic() - self.started >= self.seconds:
            return f"time limit of {self.seconds / 60:g} minutes"
        return None

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = {"config": self.fingerprint}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.reason is not None:
            return
        local = self._local_reason()
        if not trainer.strategy.reduce_boolean_decision(local is not None, all=False):
            return
        self.reason = local or "another rank was told to stop"
        trainer.save_checkpoint(self.directory / LAST)
        # The checkpoint callbacks would write last.ckpt again at the end of this epoch, as if
        # the epoch were complete: the mid-epoch one just written is what a resume needs.
        for callback in trainer.checkpoint_callbacks:
            callback.save_last = False
        trainer.should_stop = True
        if trainer.is_global_zero:
            write_run_state(self.directory, "interrupted", self.fingerprint, trainer.global_step)
