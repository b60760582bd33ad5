"""Training methods beside the deterministic one: a forecaster trained as an ensemble (CRPS) or
by denoising (diffusion). Each is a forecaster task to the model and the data; this module
picks its model spec and its Lightning module."""

from __future__ import annotations

from typing import Any

import torch

from squall.config.schema import TaskConfig
from squall.models.interface import ForecastModel
from squall.training.diffusion_forecaster import DiffusionForecaster
from squall.training.ensemble_forecaster import EnsembleForecaster
from squall.training.forecaster import Forecaster

METHODS: dict[str, type[Forecaster]] = {
    "ensemble_forecaster": EnsembleForecaster,
    "diffusion_forecaster": DiffusionForecaster,
}


def method_model_spec(spec: dict[str, Any], task: TaskConfig) -> dict[str, Any]:
    """The model spec of a method: a forecaster's, with the diffusion settings (sampler
    included) for a diffusion model, so that a checkpoint or an export rebuilds it."""
    if task.name not in METHODS:
        return spec
    spec = spec | {"task": "forecaster"}
    if task.name == "diffusion_forecaster":
        spec["diffusion"] = task.diffusion.model_dump()
    return spec


def build_method_task(
    model: ForecastModel,
    config: dict[str, Any],
    statistics: dict[str, list[float]],
    loss: torch.nn.Module,
    area_weight: torch.Tensor,
) -> Forecaster:
    return METHODS[config["task"]["name"]](model, config, statistics, loss, area_weight)
