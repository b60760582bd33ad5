"""A profiler report of a training: time per phase, samples/s including the data loader, and
peak memory. Written to <output root>/profile.json and logged to MLflow at the end."""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

PHASES = ("data", "forward", "backward", "optimizer", "step")


class TrainingProfiler(Callback):
    """Per training batch: waiting for data (from the end of one batch to the start of the next),
    forward (to the loss), backward, optimiser step, and the whole step (all but the data).
    On GPUs each mark synchronises the device, so phases are real kernel time (this costs a
    little speed: turn it off for production). A step replayed from a CUDA graph
    (training.cuda_graph) has no forward and backward marks: only its data and step times."""

    def __init__(self, out_path: Path, skip_first: int = 2) -> None:
        self.out_path = Path(out_path)
        self.skip_first = skip_first  # the first batches pay for warm-up and allocation
        self.times: dict[str, list[float]] = {phase: [] for phase in PHASES}
        self.samples = 0
        self.batches = 0
        self._mark = None
        self._step_start = None
        self._backward_seen = False
        self._batch_end = None
        self._wall_start = None

    def _now(self, module: pl.LightningModule) -> float:
        if module.device.type == "cuda":
            torch.cuda.synchronize(module.device)
        return time.perf_counter()

    def _record(self, phase: str, module: pl.LightningModule) -> None:
        now = self._now(module)
        if self._mark is not None and self.batches >= self.skip_first:
            self.times[phase].append(now - self._mark)
        self._mark = now

    def on_train_start(self, trainer, pl_module) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(pl_module.device)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        now = self._now(pl_module)
        if self._batch_end is not None and self.batches >= self.skip_first:
            self.times["data"].append(now - self._batch_end)
        if self.batches == self.skip_first:
            self._wall_start = now
        self._mark = self._step_start = now
        self._backward_seen = False

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        self._record("forward", pl_module)

    def on_after_backward(self, trainer, pl_module) -> None:
        self._record("backward", pl_module)
        self._backward_seen = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._backward_seen:  # not in a graph replay, where no backward hook runs
            self._record("optimizer", pl_module)  # includes clipping and the scheduler step
        now = self._now(pl_module)
        if self.batches >= self.skip_first:
            self.times["step"].append(now - self._step_start)
            self.samples += int(batch["time"].shape[0])  # also for multi-dataset batches
        self.batches += 1
        self._batch_end = now

    def report(self, module: pl.LightningModule) -> dict[str, Any]:
        wall = (self._batch_end - self._wall_start) if self._wall_start and self._batch_end else 0
        medians = {
            f"{p}_ms": 1000 * float(np.median(t)) if t else None for p, t in self.times.items()
        }
        if module.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(module.device) / 2**20
        else:  # ru_maxrss is in KiB on Linux, bytes on macOS
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (
                2**20 if sys.platform == "darwin" else 2**10
            )
        return {
            "batches_measured": max(0, self.batches - self.skip_first),
            "median_per_batch": medians,
            "samples_per_second": self.samples / wall if wall > 0 else None,
            "peak_memory_mib": peak,
            "peak_memory_kind": "GPU allocated" if module.device.type == "cuda" else "process RSS",
        }

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.global_rank != 0:
            return
        report = self.report(pl_module)
        self.out_path.write_text(json.dumps(report, indent=2))
        for logger in trainer.loggers:
            metrics = {
                f"profile/{k}": v for k, v in report["median_per_batch"].items() if v is not None
            }
            if report["samples_per_second"]:
                metrics["profile/samples_per_second"] = report["samples_per_second"]
            metrics["profile/peak_memory_mib"] = report["peak_memory_mib"]
            logger.log_metrics(metrics, step=trainer.global_step)
