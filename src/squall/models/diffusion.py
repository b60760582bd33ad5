"""EDM denoising forecast model (Karras et al. 2022) and its deterministic Heun sampler.

The model denoises the next state z (or its tendency, scaled like the deterministic model's
residual) from z + sigma n, conditioned on the input states:

    D(z; sigma) = c_skip z + c_out F(c_in z, c_noise; inputs)
    c_skip = s^2 / (sigma^2 + s^2), c_out = sigma s / sqrt(sigma^2 + s^2),
    c_in = 1 / sqrt(sigma^2 + s^2), c_noise = log(sigma) / 4        (s = sigma_data)

F is the encoder-processor-decoder with the noisy target as extra input channels and an
embedding of c_noise as the condition of its conditional layer norms. A forecast step runs the
Heun sampler from pure noise, so calling the model twice gives two ensemble members; the
sampler settings travel in the model spec (and so in the exported artifact).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch_geometric.data import HeteroData

from squall.models.encoder_processor_decoder import EncoderProcessorDecoder
from squall.models.interface import ForecastModel

DIFFUSION_DEFAULTS: dict[str, Any] = {
    "prediction": "tendency",
    "sigma_data": 1.0,
    "sigma_min": 0.02,
    "sigma_max": 80.0,
    "rho": 7.0,
    "sampler_steps": 20,
}


def preconditioning(
    sigma: torch.Tensor, sigma_data: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """c_skip, c_out, c_in, c_noise of EDM for noise levels `sigma` (any shape)."""
    total = sigma**2 + sigma_data**2
    c_skip = sigma_data**2 / total
    c_out = sigma * sigma_data / total.sqrt()
    c_in = 1 / total.sqrt()
    c_noise = sigma.log() / 4
    return c_skip, c_out, c_in, c_noise


def loss_weight(sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
    """lambda(sigma) = (sigma^2 + s^2) / (sigma s)^2 = 1 / c_out^2: every noise level's
    denoising error counts as a unit-variance error of F."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def karras_sigmas(steps: int, sigma_min: float, sigma_max: float, rho: float) -> torch.Tensor:
    """steps + 1 noise levels from sigma_max down to sigma_min, spaced uniformly in
    sigma^(1/rho), then 0 (float64)."""
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64) if steps > 1 else torch.zeros(1)
    top, bottom = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    sigmas = (top + ramp.double() * (bottom - top)) ** rho
    return torch.cat([sigmas, torch.zeros(1, dtype=torch.float64)])


def sample_training_sigmas(
    shape: tuple[int, ...], settings: dict[str, Any], generator: torch.Generator | None = None
) -> torch.Tensor:
    """Noise levels for training (on the CPU): log-normal (p_mean, p_std) or uniform in
    sigma^(1/rho) between sigma_min and sigma_max (the Karras schedule, continuous)."""
    if settings.get("noise_distribution", "lognormal") == "lognormal":
        normal = torch.randn(shape, generator=generator)
        return (settings.get("p_mean", -1.2) + settings.get("p_std", 1.2) * normal).exp()
    rho = settings["rho"]
    top, bottom = settings["sigma_max"] ** (1 / rho), settings["sigma_min"] ** (1 / rho)
    return (top + torch.rand(shape, generator=generator) * (bottom - top)) ** rho


def heun_sample(
    denoise: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    noise: torch.Tensor,
    sigmas: torch.Tensor,
) -> torch.Tensor:
    """EDM's deterministic sampler: the probability-flow ODE dx/dsigma = (x - D(x; sigma)) /
    sigma from x = sigmas[0] noise, by Heun's method, with a plain Euler step to sigma = 0."""
    x = noise * sigmas[0]
    for current, following in zip(sigmas[:-1].tolist(), sigmas[1:].tolist(), strict=True):
        slope = (x - denoise(x, torch.full_like(x[..., 0, 0], current))) / current
        euler = x + (following - current) * slope
        if following == 0:
            x = euler
            continue
        corrected = (euler - denoise(euler, torch.full_like(x[..., 0, 0], following))) / following
        x = x + (following - current) * (slope + corrected) / 2
    return x


def noise_level_embedding(c_noise: torch.Tensor, channels: int) -> torch.Tensor:
    """(N,) -> (N, channels) sine and cosine features of c_noise at geometric frequencies."""
    half = channels // 2
    frequencies = torch.exp(
        -math.log(1000.0) * torch.arange(half, device=c_noise.device) / max(half, 1)
    )
    angles = c_noise[:, None].float() * frequencies[None] * 10.0
    features = torch.cat([angles.sin(), angles.cos()], dim=-1)
    if channels % 2:
        features = torch.cat([features, c_noise[:, None].float()], dim=-1)
    return features


class DiffusionForecastModel(ForecastModel):
    """A ForecastModel whose step is sampled by denoising; spec["diffusion"] holds prediction
    (state or tendency), sigma_data and the sampler's sigma_min, sigma_max, rho, sampler_steps.
    """

    def __init__(self, graph: HeteroData, spec: dict[str, Any], statistics: dict[str, list]):
        super().__init__(graph, spec, statistics)
        self.settings = DIFFUSION_DEFAULTS | spec["diffusion"]
        if self.settings["prediction"] not in ("state", "tendency"):
            raise ValueError(
                f"diffusion prediction {self.settings['prediction']!r}: use state or tendency"
            )
        if not spec["network"].get("noise_channels"):
            raise ValueError("a diffusion model needs network noise_channels > 0 (its condition)")
        # The noisy target enters as extra input channels.
        in_channels = self.network.spec["in_channels"] + len(self.output_variables)
        self.network = EncoderProcessorDecoder(
            graph,
            in_channels=in_channels,
            out_channels=len(self.output_variables),
            **spec["network"],
        )

    def target_from_state(self, state: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Normalised next state (B, E, G, V_out) -> what is denoised: the state, or the
        prognostic tendency from the last input state in units of its scale."""
        if self.settings["prediction"] == "state":
            return state
        last = x[:, -1][..., self.prognostic_columns]
        tendency = (state[..., self.prognostic_in_output] - last) / self.tendency_scale
        return state.index_copy(-1, self.prognostic_in_output, tendency.to(state.dtype))

    def state_from_target(self, target: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.settings["prediction"] == "state":
            return target
        last = x[:, -1][..., self.prognostic_columns]
        state = last + target[..., self.prognostic_in_output] * self.tendency_scale
        return target.index_copy(-1, self.prognostic_in_output, state.to(target.dtype))

    def denoise(
        self,
        noisy: torch.Tensor,
        sigma: torch.Tensor,
        x: torch.Tensor,
        valid_time: torch.Tensor,
        features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """D(noisy; sigma) given the inputs x: noisy (B, E, G, V_out), sigma (B, E)."""
        batch, members, grid, outputs = noisy.shape
        if features is None:
            features = self.network_inputs(x, valid_time)
        c_skip, c_out, c_in, c_noise = (
            c.reshape(batch, members, 1, 1).to(noisy.dtype)
            for c in preconditioning(sigma.float(), self.settings["sigma_data"])
        )
        scaled = (c_in * noisy).reshape(batch * members, grid, outputs)
        condition = noise_level_embedding(
            c_noise.reshape(-1), self.network.spec["noise_channels"]
        ).to(noisy.dtype)
        out = self.network(torch.cat([features, scaled], dim=-1), noise=condition)
        return c_skip * noisy + c_out * out.reshape(batch, members, grid, outputs)

    def forward_normalised(
        self, x: torch.Tensor, valid_time: torch.Tensor, fraction: torch.Tensor | None = None
    ) -> torch.Tensor:
        """One forecast step: a sample of the next state from fresh noise (one per member)."""
        batch, members, grid = x.shape[0], x.shape[2], x.shape[3]
        features = self.network_inputs(x, valid_time)  # the same at every sampler step
        noise = torch.randn(
            batch, members, grid, len(self.output_variables), device=x.device, dtype=x.dtype
        )
        settings = self.settings
        sigmas = karras_sigmas(
            settings["sampler_steps"], settings["sigma_min"], settings["sigma_max"], settings["rho"]
        )
        target = heun_sample(
            lambda z, sigma: self.denoise(z, sigma, x, valid_time, features), noise, sigmas
        )
        return self._bounded(self.state_from_target(target, x))


def build_forecast_model(
    graph: HeteroData, spec: dict[str, Any], statistics: dict[str, list]
) -> ForecastModel:
    """The model class a spec describes: a diffusion model where it has `diffusion` settings."""
    model_class = DiffusionForecastModel if spec.get("diffusion") else ForecastModel
    return model_class(graph, spec, statistics)
