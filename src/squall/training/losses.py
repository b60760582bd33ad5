"""Losses on (batch, time, ensemble, grid, variable) tensors in normalised space.

Reduction (the same for every loss): elementwise loss x the product of the selected scalers,
mean over variables, sum over grid points and output times (grid and time weights sum to 1;
uniform where no scaler weighs that dimension), mean over batch and ensemble.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from squall.training.scalers import Scaler, select_scalers


def _squared(error: torch.Tensor, **_: Any) -> torch.Tensor:
    return error.square()


def _absolute(error: torch.Tensor, **_: Any) -> torch.Tensor:
    return error.abs()


def _huber(error: torch.Tensor, delta: float = 1.0, **_: Any) -> torch.Tensor:
    magnitude = error.abs()
    return torch.where(magnitude <= delta, 0.5 * error.square(), delta * (magnitude - 0.5 * delta))


def _logcosh(error: torch.Tensor, **_: Any) -> torch.Tensor:
    # log(cosh(x)) = |x| + log1p(exp(-2|x|)) - log 2, stable for large |x|
    magnitude = error.abs()
    return magnitude + torch.log1p(torch.exp(-2 * magnitude)) - math.log(2.0)


ELEMENTWISE = {
    "mse": _squared,
    "rmse": _squared,
    "mae": _absolute,
    "huber": _huber,
    "logcosh": _logcosh,
}


def scaler_weight(scalers: list[Scaler]) -> torch.Tensor:
    """The product of the scalers as a 5-D tensor. Grid-only and time-only scalers are
    multiplied, then normalised to sum 1 over their dimension (the loss is a weighted mean
    there); other scalers multiply as they are."""
    weight = torch.ones([1] * 5)
    for dim in ("grid", "time"):
        part = torch.ones([1] * 5)
        for scaler in scalers:
            if scaler.dims == (dim,):
                part = part * scaler.broadcast()
        weight = weight * (part / part.sum())
    for scaler in scalers:
        if scaler.dims not in (("grid",), ("time",)):
            weight = weight * scaler.broadcast()
    return weight


def reduce_weighted(loss: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """An elementwise loss (B, T, E, G, V), already multiplied by `weight`, -> scalar."""
    batch, times, members, grid, variables = loss.shape
    per_point = loss.mean(dim=-1)  # (B, T, E, G)
    # Grid and time weights sum to 1: scalers over them are unit-sum; otherwise uniform.
    if weight.shape[3] == 1:
        per_point = per_point / grid
    if weight.shape[1] == 1:
        per_point = per_point / times
    return per_point.sum(dim=(1, 3)).mean()


class WeightedLoss(nn.Module):
    """One loss kind with its scalers. `rmse` is the root of the reduced squared error."""

    def __init__(
        self,
        kind: str,
        scalers: list[Scaler],
        ignore_nans: bool = False,
        **options: Any,
    ) -> None:
        super().__init__()
        if kind not in ELEMENTWISE:
            raise ValueError(f"unknown loss {kind!r}; choose from {sorted(ELEMENTWISE)}")
        self.kind, self.ignore_nans, self.options = kind, ignore_nans, options
        self.scaler_names = [scaler.name for scaler in scalers]
        self.register_buffer("weight", scaler_weight(scalers), persistent=False)
        # Model sharding (squall.distributed) sets this rank's grid shard: the loss is then its
        # shard's part of the whole grid's weights, summed over the shards.
        self.grid_shard = None

    def forward(
        self, prediction: torch.Tensor, target: torch.Tensor, skip: torch.Tensor | None = None
    ) -> torch.Tensor:
        """prediction/target (B, T, E, G, V) -> scalar, in float32. `skip` (same shape, bool)
        marks points missing in the data (the imputers' NaN mask): they add no loss."""
        error = prediction.float() - target.float()
        if skip is not None:
            error = error.masked_fill(skip, 0.0)
        if self.ignore_nans:
            error = torch.nan_to_num(error, nan=0.0)  # a missing target adds no loss
        weight = self.weight if self.grid_shard is None else self.grid_shard.weight(self.weight)
        loss = ELEMENTWISE[self.kind](error, **self.options) * weight
        reduced = reduce_weighted(loss, weight)
        if self.grid_shard is not None:
            reduced = self.grid_shard.sum(reduced)
        return reduced.sqrt() if self.kind == "rmse" else reduced


class CombinedLoss(nn.Module):
    """sum_i weight_i * loss_i."""

    def __init__(self, losses: list[WeightedLoss], weights: list[float]) -> None:
        super().__init__()
        if len(losses) != len(weights):
            raise ValueError("a combined loss needs one weight per loss")
        self.losses = nn.ModuleList(losses)
        self.weights = list(weights)

    def forward(
        self, prediction: torch.Tensor, target: torch.Tensor, skip: torch.Tensor | None = None
    ) -> torch.Tensor:
        return sum(
            w * loss(prediction, target, skip)
            for w, loss in zip(self.weights, self.losses, strict=True)
        )


def build_loss(settings: dict[str, Any], scalers: dict[str, Scaler]) -> nn.Module:
    """`training.loss`: {name, scalers, ignore_nans, ...options} or {name: combined, losses:
    [...], weights: [...]}."""
    settings = dict(settings)
    kind = settings.pop("name")
    if kind == "combined":
        parts = [build_loss(part, scalers) for part in settings["losses"]]
        return CombinedLoss(parts, settings.get("weights", [1.0] * len(parts)))
    selection = settings.pop("scalers", ["*"])
    ignore_nans = settings.pop("ignore_nans", False)
    return WeightedLoss(kind, select_scalers(scalers, selection), ignore_nans, **settings)
