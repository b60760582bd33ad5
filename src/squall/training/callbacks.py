"""Training callbacks: checkpoints on several clocks, an EMA of the weights, early stopping.
All checkpoints go through AtomicCheckpointIO (temporary file, then rename). The wall-time
guard is in squall.training.walltime."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from squall.training.plots import TrainingPlots
from squall.training.profiling import TrainingProfiler

BEST = "best"
LAST = "last.ckpt"
FINAL = "model.ckpt"  # in the run's root folder: the checkpoint a completed run chose


def checkpoint_callbacks(directory: Path, settings: dict[str, Any]) -> list[ModelCheckpoint]:
    """best.ckpt (lowest validation loss), last.ckpt (every epoch), and the periodic ones."""
    callbacks = [
        ModelCheckpoint(
            dirpath=directory,
            filename=BEST,
            monitor="val_loss",
            mode="min",
            enable_version_counter=False,
        ),
        # last.ckpt after every epoch, improved or not: what a resume starts from.
        ModelCheckpoint(
            dirpath=directory, save_top_k=0, save_last=True, enable_version_counter=False
        ),
    ]
    # Periodic checkpoints, all kept: (setting, file name, ModelCheckpoint trigger).
    periodic = (
        ("every_n_epochs", "epoch{epoch:03d}", lambda n: {"every_n_epochs": n}),
        ("every_n_steps", "step{step:06d}", lambda n: {"every_n_train_steps": n}),
        (
            "every_n_minutes",
            "time-step{step:06d}",
            lambda n: {"train_time_interval": datetime.timedelta(minutes=n)},
        ),
    )
    for key, filename, trigger in periodic:
        if settings.get(key):
            callbacks.append(
                ModelCheckpoint(
                    dirpath=directory,
                    filename=filename,
                    save_top_k=-1,
                    enable_version_counter=False,
                    auto_insert_metric_name=False,
                    **trigger(settings[key]),
                )
            )
    return callbacks


class WeightEMA(Callback):
    """An exponential moving average of the model's weights, kept beside the training weights
    and saved in checkpoints (`ema_state_dict`); the exporter prefers it."""

    def __init__(self, decay: float) -> None:
        self.decay = decay
        self.average: AveragedModel | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.average is None:
            self.average = AveragedModel(
                pl_module.model, multi_avg_fn=get_ema_multi_avg_fn(self.decay), use_buffers=True
            )

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.average.update_parameters(pl_module.model)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        if self.average is not None:
            checkpoint["ema_state_dict"] = {
                k: v.detach().clone() for k, v in self.average.module.state_dict().items()
            }

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        if "ema_state_dict" in checkpoint:
            self.on_fit_start(trainer, pl_module)
            with torch.no_grad():
                self.average.module.load_state_dict(checkpoint["ema_state_dict"])


def training_callbacks(
    training: dict[str, Any],
    diagnostics: dict[str, Any],
    root: Path,
    field_shape: tuple[int, ...] | None = None,
) -> list[Callback]:
    """Checkpoints (first: best.ckpt), early stopping, EMA, plots, profiler."""
    directory = root / "checkpoints"
    callbacks: list[Callback] = [*checkpoint_callbacks(directory, training["checkpoints"])]
    stopping = training["early_stopping"]
    if stopping["enabled"]:
        callbacks.append(
            EarlyStopping(
                monitor="val_loss",
                mode="min",
                patience=stopping["patience"],
                min_delta=stopping["min_delta"],
            )
        )
    if training.get("ema_decay"):
        callbacks.append(WeightEMA(training["ema_decay"]))
    plots = diagnostics["plots"]
    if plots["enabled"]:
        callbacks.append(
            TrainingPlots(
                root / "plots", plots["every_n_epochs"], plots["timeout_seconds"], field_shape
            )
        )
    if diagnostics["profiler"]:
        callbacks.append(TrainingProfiler(root / "profile.json"))
    return callbacks
