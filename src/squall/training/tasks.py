"""What each task adds to the forecaster's assembly: its sample dates, its model spec and its
Lightning module (forecaster, interpolator, autoencoder; a forecaster with a boundary is a
limited-area model; the training methods beside the deterministic one train a forecaster as an
ensemble (CRPS) or by denoising (diffusion))."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from squall.config.schema import TaskConfig
from squall.data.sampling import sample_offsets
from squall.models.interface import ForecastModel
from squall.training.autoencoder import Autoencoder
from squall.training.diffusion_forecaster import DiffusionForecaster
from squall.training.ensemble_forecaster import EnsembleForecaster
from squall.training.forecaster import Forecaster
from squall.training.interpolator import Interpolator

# Training methods of a forecaster: to the model and the data they are forecaster tasks.
METHODS: dict[str, type[Forecaster]] = {
    "ensemble_forecaster": EnsembleForecaster,
    "diffusion_forecaster": DiffusionForecaster,
}


def task_offsets(task: TaskConfig, step: int, rollout: int) -> np.ndarray:
    """Sample date offsets in the order the task reads them.

    forecaster: k inputs, then `rollout` targets, `step` dataset steps apart;
    interpolator: its two inputs, then its targets (explicit_times, in dataset steps);
    autoencoder: the one state it reconstructs.
    """
    if task.name == "interpolator":
        times = task.explicit_times
        return np.asarray([*times.input, *times.target], dtype=np.int64)
    if task.name == "autoencoder":
        return np.zeros(1, dtype=np.int64)
    return sample_offsets(task.input_steps, rollout, step)


def task_model_spec(
    spec: dict[str, Any], task: TaskConfig, field_shape: tuple[int, ...]
) -> dict[str, Any]:
    """The model spec with the task's parts: what the output is added to, the autoencoder's
    bottleneck (no decoder skip), the interpolator's times (in dataset steps) and a
    limited-area model's boundary; a diffusion model's settings (its sampler included), so that
    a checkpoint or an export rebuilds it."""
    spec = copy.deepcopy(spec) | {"task": "forecaster" if task.name in METHODS else task.name}
    if task.name == "diffusion_forecaster":
        spec["diffusion"] = task.diffusion.model_dump()
    if task.name == "autoencoder":
        spec["network"]["decoder_skip"] = False
    if task.name == "interpolator":  # an exported interpolator says which times it relates
        spec["explicit_times"] = task.explicit_times.model_dump()
    if task.boundary is not None:
        regional_shape = list(field_shape) if task.boundary.ring_width else None
        spec["boundary"] = task.boundary.model_dump() | {"field_shape": regional_shape}
    return spec


def build_task(
    model: ForecastModel,
    config: dict[str, Any],
    statistics: dict[str, list[float]],
    loss: torch.nn.Module,
    area_weight: torch.Tensor,
    frequency_seconds: int,
) -> Forecaster:
    """The Lightning module of config['task']['name']; metrics weigh the domain only."""
    weights = area_weight if model.forced is None else area_weight * ~model.forced
    name = config["task"]["name"]
    if name in METHODS:
        return METHODS[name](model, config, statistics, loss, weights)
    if name == "interpolator":
        return Interpolator(model, config, statistics, loss, weights, frequency_seconds)
    task_class = Autoencoder if name == "autoencoder" else Forecaster
    return task_class(model, config, statistics, loss, metric_weights=weights)
