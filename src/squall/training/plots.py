"""Plots during training, drawn off the training thread: a validation sample (input, target,
prediction, error) every N epochs, and the loss curves at the end. Saved under <root>/plots and
logged to MLflow. The end of training waits for them at most `timeout` seconds."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure  # the object API: pyplot is not thread-safe
from pytorch_lightning.callbacks import Callback

from squall.evaluation.spectra import zonal_power_spectrum


def sample_figure(
    fields: dict[str, np.ndarray], lat: np.ndarray, lon: np.ndarray, title: str
) -> Figure:
    """fields name -> (points,): scattered maps, since training does not know the grid shape."""
    figure = Figure(figsize=(4 * len(fields), 3.4))
    low = min(np.nanmin(v) for k, v in fields.items() if k != "error")
    high = max(np.nanmax(v) for k, v in fields.items() if k != "error")
    for index, (name, values) in enumerate(fields.items(), start=1):
        axis = figure.add_subplot(1, len(fields), index)
        if name == "error":
            limit = float(np.nanmax(np.abs(values))) or 1.0
            image = axis.scatter(lon, lat, c=values, s=6, cmap="RdBu_r", vmin=-limit, vmax=limit)
        else:
            image = axis.scatter(lon, lat, c=values, s=6, vmin=low, vmax=high)
        axis.set_title(name)
        axis.set_xlabel("longitude (deg)")
        axis.set_ylabel("latitude (deg)")
        figure.colorbar(image, ax=axis)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def distribution_figure(
    target: np.ndarray, prediction: np.ndarray, variable: str, field_shape, lat, lon, title: str
) -> Figure:
    """Histogram of target and prediction values, and (on a regular grid) their zonal power
    spectra: a model that blurs loses the tails and the short wavelengths."""
    spectra = field_shape is not None and len(field_shape) == 2
    figure = Figure(figsize=(10 if spectra else 5, 3.6))
    axis = figure.add_subplot(1, 2 if spectra else 1, 1)
    bins = np.histogram_bin_edges(np.concatenate([target, prediction]), bins=40)
    axis.hist(target, bins=bins, alpha=0.6, label="target")
    axis.hist(prediction, bins=bins, alpha=0.6, label="prediction")
    axis.set_xlabel(variable)
    axis.set_ylabel("grid points")
    axis.legend()
    if spectra:
        axis = figure.add_subplot(1, 2, 2)
        for name, values in (("target", target), ("prediction", prediction)):
            wavelength, power = zonal_power_spectrum(values[None], lat, lon, field_shape)
            axis.loglog(wavelength, power, marker=".", label=name)
        axis.invert_xaxis()
        axis.set_xlabel("zonal wavelength (km)")
        axis.set_ylabel("power")
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def loss_figure(train: list[tuple[int, float]], validation: list[tuple[int, float]]) -> Figure:
    figure = Figure(figsize=(6, 4))
    axis = figure.add_subplot()
    if train:
        axis.plot(*zip(*train, strict=True), label="training", alpha=0.7)
    if validation:
        axis.plot(*zip(*validation, strict=True), marker="o", label="validation")
    axis.set_xlabel("optimiser step")
    axis.set_ylabel("loss (normalised units)")
    axis.set_yscale("log")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    return figure


class TrainingPlots(Callback):
    def __init__(
        self,
        directory: Path,
        every_n_epochs: int = 1,
        timeout: float = 60.0,
        field_shape: tuple[int, ...] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.field_shape = tuple(field_shape) if field_shape else None
        self.every_n_epochs = every_n_epochs
        self.timeout = timeout
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="squall-plots")
        self.pending: list[Future] = []
        self.train_losses: list[tuple[int, float]] = []
        self.val_losses: list[tuple[int, float]] = []
        self.dropped = 0

    def _submit(self, trainer, name: str, make_figure) -> None:
        if trainer.global_rank != 0:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{name}.png"

        def draw() -> None:
            make_figure().savefig(path, dpi=90)
            for logger in trainer.loggers:
                if hasattr(logger, "run_id") and hasattr(logger.experiment, "log_artifact"):
                    logger.experiment.log_artifact(logger.run_id, str(path), "plots")

        self.pending = [f for f in self.pending if not f.done()] + [self.pool.submit(draw)]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None:
            self.train_losses.append((trainer.global_step, float(loss)))

    @torch.no_grad()
    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        if batch_idx != 0 or trainer.sanity_checking:
            return
        if trainer.current_epoch % self.every_n_epochs:
            return
        if isinstance(batch["data"], dict):  # several datasets: no single-grid sample map yet
            return
        model = pl_module.model
        prediction, target, _ = pl_module._roll_out({k: v[:1] for k, v in batch.items()}, 1)
        columns = model.output_columns
        prediction = model.normalizer.denormalise(prediction, columns)[0, 0, 0].cpu().numpy()
        target = model.normalizer.denormalise(target, columns)[0, 0, 0].cpu().numpy()
        last_input = batch["data"][0, model.input_steps - 1, 0][..., columns].cpu().numpy()
        lat = np.rad2deg(model.latitudes.cpu().numpy())
        lon = np.rad2deg(model.longitudes.cpu().numpy())
        variable = model.output_variables[0]
        fields = {
            "input (t)": last_input[:, 0],
            "target": target[:, 0],
            "prediction": prediction[:, 0],
            "error": prediction[:, 0] - target[:, 0],
        }
        title = f"{variable}, validation sample, epoch {trainer.current_epoch}"
        self._submit(
            trainer,
            f"sample_epoch{trainer.current_epoch:03d}",
            lambda: sample_figure(fields, lat, lon, title),
        )
        grid = self.field_shape
        shape = grid if grid and int(np.prod(grid)) == len(lat) else None
        self._submit(
            trainer,
            f"distribution_epoch{trainer.current_epoch:03d}",
            lambda: distribution_figure(
                target[:, 0], prediction[:, 0], variable, shape, lat, lon, title
            ),
        )

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking and "val_loss" in trainer.callback_metrics:
            self.val_losses.append(
                (trainer.global_step, float(trainer.callback_metrics["val_loss"]))
            )

    def on_train_end(self, trainer, pl_module) -> None:
        train, val = list(self.train_losses), list(self.val_losses)
        self._submit(trainer, "loss_curves", lambda: loss_figure(train, val))
        _, late = wait(self.pending, timeout=self.timeout)
        self.dropped = len(late)
        self.pool.shutdown(wait=False, cancel_futures=True)  # never hold the end of training
