"""The diffusion method: EDM denoising training of a one-step forecaster.

Each training sample draws a noise level sigma per member (log-normal or Karras), noises the
target (the next state or its tendency, see squall.models.diffusion) and scores the denoised
target with the configured loss (mse with all its scalers) weighted by lambda(sigma): the
errors are multiplied by sqrt(lambda) before squaring. Validation scores the same denoising
loss with the noise of training step 0, so that epochs compare on the same noise: one network
call per batch, where a sampled forecast would take 2 x sampler_steps (forecasts are scored by
`squall predict` + `squall evaluate`).

Noise levels and noise are drawn per sample from generators seeded by (training seed, training
step, first time of the sample), the noise over the whole grid, then cut to the grid points
this rank computes: under model sharding every shard of a model group sees the same noise
levels and its own slice of the same noise, so a sharded run computes the loss and gradients
of an unsharded one; data-parallel replicas (other samples) get other noise.
"""

from __future__ import annotations

import torch

from squall.models.diffusion import loss_weight, sample_training_sigmas
from squall.training.forecaster import Forecaster


class DiffusionForecaster(Forecaster):
    def draw_noise(
        self, batch: dict[str, torch.Tensor], target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Noise levels sigma (B, E) and unit noise shaped like `target` (B, E, G, V_out), G
        this rank's grid points: each sample's drawn whole on the target's device, then cut."""
        members, outputs = target.shape[1], target.shape[3]
        grid = len(self.model.latitudes)  # the whole grid, whatever this rank computes
        points = self.model.network.grid_points
        sigmas, noises = [], []
        for levels, noise in self.sample_seeds(batch, 2):
            generator = torch.Generator().manual_seed(levels)
            sigmas.append(sample_training_sigmas((members,), self.model.settings, generator))
            generator = torch.Generator(device=target.device).manual_seed(noise)
            whole = torch.randn((members, grid, outputs), generator=generator, device=target.device)
            noises.append(whole[:, points])
        return torch.stack(sigmas).to(target.device), torch.stack(noises).to(target.dtype)

    def denoising_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The lambda-weighted loss of denoising the target at random noise levels."""
        model = self.model
        data = model.normalizer.normalise(batch["data"])  # (B, T, E, G, V)
        k = model.input_steps
        inputs, columns = data[:, :k], model.output_columns
        target = model.target_from_state(data[:, k][..., columns], inputs)  # (B, E, G, V_out)
        sigma, noise = self.draw_noise(batch, target)
        noisy = target + sigma[..., None, None].to(target.dtype) * noise
        denoised = model.denoise(noisy, sigma, inputs, batch["time"][:, k])
        scale = loss_weight(sigma, model.settings["sigma_data"]).sqrt()[..., None, None]
        skip = model.normalizer.nan_mask(batch["data"][:, k : k + 1][..., columns])
        # one output time: (B, 1, E, G, V_out) for the loss
        return self.loss((denoised * scale)[:, None], (target * scale)[:, None], skip)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.denoising_loss(batch)
        size = batch["data"].shape[0]
        self.log("train_loss", loss, prog_bar=True, batch_size=size)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.denoising_loss(batch)
        size = batch["data"].shape[0]
        self.log("val_loss", loss, prog_bar=True, batch_size=size, sync_dist=True)
        return loss

    def on_validation_epoch_end(self) -> None:
        """Nothing: the Forecaster's per-variable RMSE needs forecasts, which this skips."""
