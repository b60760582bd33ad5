"""Losses in normalised space, weighted by grid-point area."""

from __future__ import annotations

import torch


def area_weighted_mse(
    prediction: torch.Tensor, target: torch.Tensor, area_weight: torch.Tensor
) -> torch.Tensor:
    """prediction/target (B, E, G, V), area_weight (G,): squared error averaged over variables,
    summed over grid points with weights normalised to 1, averaged over batch and ensemble."""
    weights = area_weight / area_weight.sum()
    squared = (prediction.float() - target.float()).square().mean(dim=-1)  # (B, E, G)
    return (squared * weights).sum(dim=-1).mean()
