"""The autoencoder task: each state encoded onto the hidden mesh and decoded back.

The network runs without its decoder skip (the decoder sees only the hidden mesh and the data
nodes' static features) and without a residual, so the hidden mesh is a true bottleneck; a
processor of 0 layers makes it encoder-decoder only.
"""

from __future__ import annotations

import torch

from squall.training.forecaster import Forecaster


class Autoencoder(Forecaster):
    """Validation metrics are named val/rmse/<variable>/reconstruction."""

    def _metric_name(self, variable: str, lead: int) -> str:
        return f"{variable}__reconstruction"

    def _roll_out(
        self, batch: dict[str, torch.Tensor], steps: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalised reconstruction and target (B, 1, E, G, V_out) and the mask of points
        missing in the data. `steps` is unused."""
        data = self.model.normalizer.normalise(batch["data"])  # (B, 1, E, G, V)
        reconstruction = self.model.forward_normalised(data[:, :1], batch["time"][:, 0])
        columns = self.model.output_columns
        skip = self.model.normalizer.nan_mask(batch["data"][:, :1][..., columns])
        return reconstruction[:, None], data[:, :1][..., columns], skip
