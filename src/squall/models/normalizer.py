"""Mean/stdev normalisation held in the model, so an exported model carries its own statistics."""

from __future__ import annotations

import torch
from torch import nn

# A variable constant over the statistics period (stdev 0) is passed through centred, not scaled.
_MIN_STDEV = 1e-12


class Normalizer(nn.Module):
    def __init__(self, mean: list[float], stdev: list[float]) -> None:
        super().__init__()
        stdev_tensor = torch.as_tensor(stdev, dtype=torch.float32)
        stdev_tensor = torch.where(stdev_tensor > _MIN_STDEV, stdev_tensor, 1.0)
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("stdev", stdev_tensor)

    def normalise(self, x: torch.Tensor, columns: torch.Tensor | None = None) -> torch.Tensor:
        """x (..., variables) physical -> normalised; `columns` picks a subset of the variables."""
        mean, stdev = self._select(columns)
        return (x - mean) / stdev

    def denormalise(self, x: torch.Tensor, columns: torch.Tensor | None = None) -> torch.Tensor:
        mean, stdev = self._select(columns)
        return x * stdev + mean

    def _select(self, columns: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if columns is None:
            return self.mean, self.stdev
        return self.mean[columns], self.stdev[columns]
