"""Preprocessing inside the model: normalisers, remappers and imputers round-trip exactly, NaNs
are imputed for the network and restored on the forecast, ReLU bounds hold."""

from __future__ import annotations

import pytest
import torch
from test_interface import SPEC, STATS, _graph

from squall.models.interface import ForecastModel
from squall.models.normalizer import NORMALISERS, Normalizer
from squall.models.preprocessing import Preprocessor
from squall.models.remapper import REMAPPERS

VARIABLES = ["a", "b", "c"]
STATISTICS = {
    "mean": [100.0, -3.0, 2.0],
    "stdev": [10.0, 2.0, 0.0],  # c is constant over the statistics period
    "minimum": [50.0, -9.0, 2.0],
    "maximum": [150.0, 4.0, 2.0],
    "tendency_stdev": [1.0, 0.5, 0.1],
}


@pytest.mark.parametrize("method", NORMALISERS)
def test_each_normaliser_round_trips_and_maps_its_statistics(method):
    normalizer = Normalizer([method] * 3, STATISTICS)
    x = torch.randn(4, 5, 3, dtype=torch.float64) * 20 + 50
    torch.testing.assert_close(normalizer.denormalise(normalizer.normalise(x)).double(), x)
    low, high = torch.tensor(STATISTICS["minimum"][:2]), torch.tensor(STATISTICS["maximum"][:2])
    mapped = normalizer.normalise(torch.stack([low, high]), torch.tensor([0, 1]))
    expected = {
        "mean-std": (torch.stack([low, high]) - torch.tensor([100.0, -3.0]))
        / torch.tensor([10.0, 2.0]),
        "std": torch.stack([low, high]) / torch.tensor([10.0, 2.0]),
        "min-max": torch.tensor([[0.0, 0.0], [1.0, 1.0]]),
        "max": torch.stack([low, high]) / torch.stack([high, high]).abs()[0],
        "none": torch.stack([low, high]),
    }[method]
    torch.testing.assert_close(mapped, expected)
    # A zero spread never divides by zero.
    assert torch.isfinite(normalizer.normalise(torch.full((3,), 2.0))).all()


def test_normaliser_per_variable_and_errors():
    config = {"normaliser": {"default": "mean-std", "min-max": ["b"], "none": ["c"]}}
    preprocessor = Preprocessor(VARIABLES, STATISTICS, config)
    assert preprocessor.normalizer.methods == ["mean-std", "min-max", "none"]
    with pytest.raises(ValueError, match="not a model variable"):
        Preprocessor(VARIABLES, STATISTICS, {"normaliser": {"max": ["zz"]}})
    with pytest.raises(ValueError, match="unknown normaliser"):
        Preprocessor(VARIABLES, STATISTICS, {"normaliser": {"robust": ["a"]}})
    with pytest.raises(ValueError, match="needs statistics"):
        Normalizer(["min-max"], {"mean": [0.0], "stdev": [1.0]})


@pytest.mark.parametrize("method", REMAPPERS)
def test_each_remapper_round_trips_exactly(method):
    entry = {"method": method, "variables": ["b"], "lmbda": 0.5 if method == "boxcox" else 0.0}
    statistics = {**STATISTICS, "minimum": [50.0, 0.01, 2.0], "maximum": [150.0, 40.0, 2.0]}
    preprocessor = Preprocessor(
        VARIABLES, statistics, {"remapper": [entry], "normaliser": {"min-max": ["b"]}}
    )
    preprocessor.double()  # moves like any module (as .to(device) does)
    x = torch.rand(6, 3, dtype=torch.float64) * 40 + 0.01
    normalised = preprocessor.normalise(x)
    torch.testing.assert_close(preprocessor.denormalise(normalised), x, rtol=1e-12, atol=1e-12)
    # min-max of the remapped variable: the statistics' extremes land on 0 and 1.
    extremes = torch.tensor([[50.0, 0.01, 2.0], [150.0, 40.0, 2.0]], dtype=torch.float64)
    torch.testing.assert_close(
        preprocessor.normalise(extremes)[:, 1], torch.tensor([0.0, 1.0], dtype=torch.float64)
    )


def test_remapped_variable_must_not_use_mean_std():
    with pytest.raises(ValueError, match="min-max, max or none"):
        Preprocessor(VARIABLES, STATISTICS, {"remapper": [{"method": "log1p", "variables": ["a"]}]})


def test_imputers_fill_with_statistic_constant_or_other_variable():
    config = {
        "imputer": [
            {"method": "mean", "variables": ["a"]},
            {"method": "constant", "variables": ["b"], "value": 7.0},
            {"method": "variable", "variables": ["c"], "source": "a"},
        ],
        "normaliser": {"default": "none"},
    }
    preprocessor = Preprocessor(VARIABLES, STATISTICS, config)
    x = torch.tensor([[float("nan"), float("nan"), float("nan")], [1.0, 2.0, 3.0]])
    filled = preprocessor.normalise(x)
    # c copies a's value before a is imputed: a raw NaN stays NaN there.
    assert filled[0, :2].tolist() == [100.0, 7.0] and torch.isnan(filled[0, 2])
    assert filled[1].tolist() == [1.0, 2.0, 3.0]
    x2 = torch.tensor([[5.0, float("nan"), float("nan")]])
    assert preprocessor.normalise(x2).tolist() == [[5.0, 7.0, 5.0]]
    assert preprocessor.nan_mask(x).tolist() == [[True, True, True], [False, False, False]]


def _forecast_model(spec_extra: dict, statistics_extra: dict | None = None) -> ForecastModel:
    statistics = {**STATS, "minimum": [50.0, -9.0, 0.0, 0.0], "maximum": [150.0, 4.0, 9.0, 5.0]}
    return ForecastModel(
        _graph(), {**SPEC, **spec_extra}, {**statistics, **(statistics_extra or {})}
    )


def test_forecast_restores_nans_where_the_input_had_them():
    model = _forecast_model(
        {"preprocessing": {"imputer": [{"method": "mean", "variables": ["a"]}]}}
    )
    x = torch.randn(1, 2, 1, 30, 4) + 100
    x[..., :5, 0] = float("nan")  # a land-sea style mask: missing at the same points each time
    out = model.rollout(x, torch.tensor([0]), steps=2, known_future=torch.randn(1, 2, 1, 30, 4))
    assert torch.isnan(out[..., :5, 0]).all()
    assert torch.isfinite(out[..., 5:, :]).all() and torch.isfinite(out[..., 1:]).all()


def test_relu_bounding_keeps_outputs_non_negative_in_physical_units():
    model = _forecast_model({"bounding": [{"kind": "relu", "variables": ["d"]}]})
    with torch.no_grad():
        list(model.network.output_mlp.modules())[-1].bias.fill_(-100.0)  # push outputs negative
    out = model.rollout(
        torch.randn(1, 2, 1, 30, 4), torch.tensor([0]), 1, known_future=torch.randn(1, 1, 1, 30, 4)
    )
    diagnostic = out[..., 2]
    torch.testing.assert_close(diagnostic, torch.zeros_like(diagnostic), atol=1e-5, rtol=0)
    assert (out[..., 0] < 0).any()  # unbounded variables are left alone
    with pytest.raises(ValueError, match="not an output variable"):
        _forecast_model({"bounding": [{"kind": "relu", "variables": ["f"]}]})


def test_remapped_and_bounded_precipitation_like_variable_round_trips_through_the_model():
    spec = {
        "preprocessing": {
            "remapper": [{"method": "log1p", "variables": ["d"]}],
            "normaliser": {"min-max": ["d"]},
        },
        "bounding": [{"kind": "relu", "variables": ["d"]}],
    }
    model = _forecast_model(spec)
    x = torch.rand(1, 2, 1, 30, 4) * 5
    normalised = model.normalizer.normalise(x)
    torch.testing.assert_close(model.normalizer.denormalise(normalised), x, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        list(model.network.output_mlp.modules())[-1].bias.fill_(-100.0)
    out = model.rollout(x, torch.tensor([0]), 1, known_future=torch.rand(1, 1, 1, 30, 4))
    assert out[..., 2].min() >= -1e-5


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_preprocessing_and_rollout_run_on_cuda_like_on_cpu():
    spec = {
        "preprocessing": {
            "remapper": [{"method": "log1p", "variables": ["d"]}],
            "normaliser": {"min-max": ["d"]},
            "imputer": [{"method": "mean", "variables": ["a"]}],
        },
        "bounding": [{"kind": "relu", "variables": ["d"]}],
    }
    torch.manual_seed(0)
    model = _forecast_model(spec)
    torch.nn.init.normal_(list(model.network.output_mlp.modules())[-1].weight, std=0.1)
    x = torch.rand(2, 2, 1, 30, 4) * 5
    x[..., :3, 0] = float("nan")
    future = torch.rand(2, 3, 1, 30, 4)
    times = torch.tensor([0, 21600])
    on_cpu = model.rollout(x, times, 3, known_future=future)
    on_gpu = model.cuda().rollout(x.cuda(), times.cuda(), 3, known_future=future.cuda())
    assert on_gpu.device.type == "cuda"
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, atol=1e-4, rtol=1e-4, equal_nan=True)
