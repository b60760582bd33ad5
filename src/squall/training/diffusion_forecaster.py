"""The diffusion method: EDM denoising training of a one-step forecaster.

Each training sample draws a noise level sigma per member (log-normal or Karras), noises the
target (the next state or its tendency, see squall.models.diffusion) and scores the denoised
target with the configured loss (mse with all its scalers) weighted by lambda(sigma): the
errors are multiplied by sqrt(lambda) before squaring. Validation runs the Heun sampler, like a
forecast, and logs the Forecaster's val_loss and val/rmse of the sampled states.
"""

from __future__ import annotations

import torch

from squall.models.diffusion import loss_weight, sample_training_sigmas
from squall.training.forecaster import Forecaster


class DiffusionForecaster(Forecaster):
    def denoising_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        model = self.model
        data = model.normalizer.normalise(batch["data"])  # (B, T, E, G, V)
        k = model.input_steps
        inputs, columns = data[:, :k], model.output_columns
        target = model.target_from_state(data[:, k][..., columns], inputs)  # (B, E, G, V_out)
        settings = model.settings
        sigma = sample_training_sigmas(target.shape[:2], settings, target.device)
        noisy = target + sigma[..., None, None].to(target.dtype) * torch.randn_like(target)
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
