"""The diffusion method: EDM denoising training of a one-step forecaster.

Each training sample draws a noise level sigma per member (log-normal or Karras), noises the
target (the next state or its tendency, see squall.models.diffusion) and scores the denoised
target with the configured loss (mse with all its scalers) weighted by lambda(sigma): the
errors are multiplied by sqrt(lambda) before squaring. Validation scores the same denoising
loss with noise drawn from a generator seeded per batch, so that epochs compare on the same
noise: one network call per batch, where a sampled forecast would take 2 x sampler_steps
(forecasts are scored by `squall predict` + `squall evaluate`).
"""

from __future__ import annotations

import torch

from squall.models.diffusion import loss_weight, sample_training_sigmas
from squall.training.forecaster import Forecaster


class DiffusionForecaster(Forecaster):
    def denoising_loss(
        self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """The lambda-weighted loss of denoising the target at random noise levels; noise and
        levels come from `generator` (on the CPU) when given."""
        model = self.model
        data = model.normalizer.normalise(batch["data"])  # (B, T, E, G, V)
        k = model.input_steps
        inputs, columns = data[:, :k], model.output_columns
        target = model.target_from_state(data[:, k][..., columns], inputs)  # (B, E, G, V_out)
        settings = model.settings
        sigma = sample_training_sigmas(target.shape[:2], settings, generator).to(target.device)
        if generator is None:
            noise = torch.randn_like(target)
        else:
            noise = torch.randn(target.shape, generator=generator).to(target)
        noisy = target + sigma[..., None, None].to(target.dtype) * noise
        denoised = model.denoise(noisy, sigma, inputs, batch["time"][:, k])
        scale = loss_weight(sigma, settings["sigma_data"]).sqrt()[..., None, None]
        skip = model.normalizer.nan_mask(batch["data"][:, k : k + 1][..., columns])
        # one output time: (B, 1, E, G, V_out) for the loss
        return self.loss((denoised * scale)[:, None], (target * scale)[:, None], skip)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.denoising_loss(batch)
        size = batch["data"].shape[0]
        self.log("train_loss", loss, prog_bar=True, batch_size=size)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(batch_idx)
        loss = self.denoising_loss(batch, generator)
        size = batch["data"].shape[0]
        self.log("val_loss", loss, prog_bar=True, batch_size=size, sync_dist=True)
        return loss

    def on_validation_epoch_end(self) -> None:
        """Nothing: the Forecaster's per-variable RMSE needs forecasts, which this skips."""
