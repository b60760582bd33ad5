"""EDM preconditioning identities, the Heun sampler against the exact probability-flow solution
for Gaussian data, and the diffusion forecast model: denoising, sampling, export round trip."""

from __future__ import annotations

import math

import pytest
import torch
from tiny_graph import tiny_graph

from squall.export.artifact import load_artifact, write_artifact
from squall.models.diffusion import (
    DiffusionForecastModel,
    heun_sample,
    karras_sigmas,
    loss_weight,
    preconditioning,
    sample_training_sigmas,
)

SIGMAS = torch.tensor([1e-4, 0.02, 0.3, 1.0, 5.0, 80.0], dtype=torch.float64)


@pytest.mark.parametrize("sigma_data", [0.5, 1.0, 2.0])
def test_preconditioning_identities(sigma_data):
    c_skip, c_out, c_in, c_noise = preconditioning(SIGMAS, sigma_data)
    total = SIGMAS**2 + sigma_data**2
    torch.testing.assert_close(c_in**2 * total, torch.ones_like(SIGMAS))
    torch.testing.assert_close(c_out**2, total * c_skip * (1 - c_skip))
    torch.testing.assert_close(loss_weight(SIGMAS, sigma_data) * c_out**2, torch.ones_like(SIGMAS))
    torch.testing.assert_close(c_noise, SIGMAS.log() / 4)
    # F's training target (y - c_skip (y + sigma n)) / c_out has unit variance for y ~ N(0, s^2)
    variance = ((1 - c_skip) ** 2 * sigma_data**2 + c_skip**2 * SIGMAS**2) / c_out**2
    torch.testing.assert_close(variance, torch.ones_like(SIGMAS))
    # no noise: D(x; 0) = x whatever the network says (c_skip -> 1, c_out -> 0)
    tiny_skip, tiny_out, _, _ = preconditioning(torch.tensor([1e-12], dtype=torch.float64), 1.0)
    assert float(tiny_skip) == pytest.approx(1.0) and float(tiny_out) < 1e-11


def test_karras_sigmas_span_the_range_and_end_at_zero():
    sigmas = karras_sigmas(10, 0.02, 80.0, 7.0)
    assert len(sigmas) == 11 and float(sigmas[-1]) == 0.0
    assert float(sigmas[0]) == pytest.approx(80.0) and float(sigmas[-2]) == pytest.approx(0.02)
    assert (sigmas[:-1] > sigmas[1:]).all()


def test_training_sigmas_follow_the_chosen_distribution():
    generator = torch.Generator().manual_seed(0)
    lognormal = sample_training_sigmas((20000,), {"p_mean": -1.2, "p_std": 1.2}, generator)
    assert float(lognormal.log().mean()) == pytest.approx(-1.2, abs=0.05)
    assert float(lognormal.log().std()) == pytest.approx(1.2, abs=0.05)
    settings = {"noise_distribution": "karras", "sigma_min": 0.02, "sigma_max": 80.0, "rho": 7.0}
    karras = sample_training_sigmas((20000,), settings, generator)
    assert 0.02 <= float(karras.min()) and float(karras.max()) <= 80.0


def test_heun_sampler_solves_the_flow_of_gaussian_data():
    """Data ~ N(mu, s^2): the ideal denoiser is mu + s^2/(s^2 + sigma^2) (x - mu), and the
    probability-flow ODE takes x at sigma_max to mu + (x - mu) s / sqrt(s^2 + sigma_max^2).
    Heun's method is second order: doubling the steps divides the error by about 4."""
    mu, s = 3.0, 0.5

    def ideal(x, sigma):
        return mu + s**2 / (s**2 + sigma[..., None, None] ** 2) * (x - mu)

    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(2, 3, 50, 4, generator=generator, dtype=torch.float64)
    exact = mu + (noise * 80.0 - mu) * s / math.sqrt(s**2 + 80.0**2)
    errors = {}
    for steps in (20, 40, 80):
        sample = heun_sample(ideal, noise, karras_sigmas(steps, 0.002, 80.0, 7.0))
        errors[steps] = float((sample - exact).abs().max())
    assert errors[80] < 5e-3
    assert errors[20] / errors[40] > 3.5 and errors[40] / errors[80] > 3.5
    assert float(sample.mean()) == pytest.approx(mu, abs=0.05)  # the data's mean, and ...
    assert float(sample.std()) == pytest.approx(s, rel=0.1)  # ... its spread


def _model(prediction: str = "tendency", steps: int = 3) -> DiffusionForecastModel:
    torch.manual_seed(0)
    variables = ["a", "b", "f"]
    spec = {
        "variables": variables,
        "forcing": ["f"],
        "diagnostic": [],
        "computed_forcings": ["cos_latitude"],
        "input_steps": 2,
        "timestep_seconds": 21600,
        "network": {"hidden_channels": 16, "processor_layers": 1, "noise_channels": 6},
        "diffusion": {"prediction": prediction, "sampler_steps": steps, "sigma_max": 10.0},
    }
    statistics = {
        "mean": [1.0, -2.0, 0.5],
        "stdev": [2.0, 1.0, 1.0],
        "tendency_stdev": [0.5, 0.2, 0.1],
        "minimum": [-5.0, -5.0, -5.0],
        "maximum": [5.0, 5.0, 5.0],
    }
    return DiffusionForecastModel(tiny_graph(), spec, statistics)


@pytest.mark.parametrize("prediction", ["state", "tendency"])
def test_denoiser_returns_a_clean_input_and_targets_round_trip(prediction):
    model = _model(prediction)
    x = torch.randn(2, 2, 3, 30, 3)
    state = torch.randn(2, 3, 30, 2)
    target = model.target_from_state(state, x)
    torch.testing.assert_close(model.state_from_target(target, x), state)
    time = torch.tensor([820454400, 820476000])
    denoised = model.denoise(target, torch.full((2, 3), 1e-6), x, time)
    torch.testing.assert_close(denoised, target, rtol=0, atol=1e-5)


def test_forecast_step_samples_distinct_members_and_gradients_reach_the_network():
    model = _model()
    x = torch.randn(2, 2, 3, 30, 3)
    time = torch.tensor([820454400, 820476000])
    with torch.no_grad():
        out = model.forward_normalised(x, time)
    assert out.shape == (2, 3, 30, 2) and torch.isfinite(out).all()
    assert not torch.allclose(out[:, 0], out[:, 1])  # each member its own noise
    sigma = torch.full((2, 3), 0.7)
    model.denoise(torch.randn(2, 3, 30, 2), sigma, x, time).square().mean().backward()
    conditional = [p for n, p in model.named_parameters() if "scale_shift" in n]
    assert conditional and all(p.grad is not None for p in conditional)


def test_export_round_trip_keeps_the_sampler(tmp_path):
    model = _model(steps=4)
    graph = tiny_graph()
    statistics = {
        "mean": [1.0, -2.0, 0.5],
        "stdev": [2.0, 1.0, 1.0],
        "tendency_stdev": [0.5, 0.2, 0.1],
        "minimum": [-5.0, -5.0, -5.0],
        "maximum": [5.0, 5.0, 5.0],
    }
    write_artifact(model, graph, statistics, tmp_path / "m.squall", {}, "hash")
    loaded, metadata = load_artifact(tmp_path / "m.squall")
    assert isinstance(loaded, DiffusionForecastModel)
    assert loaded.settings == model.settings and metadata["model_spec"]["diffusion"]
    x = torch.randn(1, 2, 2, 30, 3) + 1.0
    time = torch.tensor([820454400])
    torch.manual_seed(5)
    expected = model.eval().rollout(x, time, 2, known_future=torch.randn(1, 2, 2, 30, 3))
    torch.manual_seed(5)
    got = loaded.rollout(x, time, 2, known_future=torch.randn(1, 2, 2, 30, 3))
    torch.testing.assert_close(got, expected)
