"""Losses and scalers against values computed by hand on small tensors."""

from __future__ import annotations

import math

import pytest
import torch

from squall.training.losses import build_loss
from squall.training.scalers import (
    Scaler,
    build_scalers,
    lead_time_decay,
    pressure_level,
    select_scalers,
    tendency,
    variable_weights,
)

VARIABLES = ["msl", "t_850", "z_500"]


def _pair():
    torch.manual_seed(0)
    prediction = torch.randn(2, 3, 1, 4, 3)  # (B, T, E, G, V)
    return prediction, torch.zeros_like(prediction)


def test_mse_is_a_plain_mean_without_scalers():
    prediction, target = _pair()
    loss = build_loss({"name": "mse", "scalers": []}, {})
    torch.testing.assert_close(loss(prediction, target), prediction.square().mean())


@pytest.mark.parametrize(
    ("name", "elementwise"),
    [
        ("mae", lambda e: e.abs()),
        ("huber", lambda e: torch.where(e.abs() <= 1, 0.5 * e**2, e.abs() - 0.5)),
        ("logcosh", lambda e: torch.log(torch.cosh(e))),
    ],
)
def test_elementwise_losses(name, elementwise):
    prediction, target = _pair()
    loss = build_loss({"name": name, "scalers": []}, {})
    torch.testing.assert_close(loss(prediction, target), elementwise(prediction).mean())


def test_rmse_is_the_root_of_the_weighted_mse():
    prediction, target = _pair()
    loss = build_loss({"name": "rmse", "scalers": []}, {})
    torch.testing.assert_close(loss(prediction, target), prediction.square().mean().sqrt())


def test_reduction_by_hand_with_area_and_variable_weights():
    prediction, target = _pair()
    area = torch.tensor([1.0, 2.0, 3.0, 4.0])
    scalers = {
        "area": Scaler("area", ("grid",), area),
        "variable_weights": variable_weights(VARIABLES, {"default": 1.0, "msl": 3.0}),
    }
    loss = build_loss({"name": "mse", "scalers": ["*"]}, scalers)
    # by hand: mean over variables of w_v e^2, weighted mean over grid, mean over time/batch
    w_v = torch.tensor([3.0, 1.0, 1.0])
    per_point = (prediction.square() * w_v).mean(dim=-1)  # (B, T, E, G)
    expected = (per_point * area / area.sum()).sum(dim=-1).mean()
    torch.testing.assert_close(loss(prediction, target), expected)


def test_combined_loss():
    prediction, target = _pair()
    combined = build_loss(
        {
            "name": "combined",
            "weights": [0.5, 2.0],
            "losses": [{"name": "mse", "scalers": []}, {"name": "mae", "scalers": []}],
        },
        {},
    )
    expected = 0.5 * prediction.square().mean() + 2.0 * prediction.abs().mean()
    torch.testing.assert_close(combined(prediction, target), expected)


def test_ignore_nans():
    prediction, target = _pair()
    target[0, 0, 0, 0, 0] = float("nan")
    assert torch.isnan(build_loss({"name": "mse", "scalers": []}, {})(prediction, target))
    loss = build_loss({"name": "mse", "scalers": [], "ignore_nans": True}, {})
    masked = prediction.clone()
    masked[0, 0, 0, 0, 0] = 0.0
    torch.testing.assert_close(loss(prediction, target), masked.square().mean())


def test_selection_star_and_exclusion():
    scalers = {n: Scaler(n, ("variable",), torch.ones(3)) for n in ("a", "b", "c")}
    assert [s.name for s in select_scalers(scalers, ["*"])] == ["a", "b", "c"]
    assert [s.name for s in select_scalers(scalers, ["*", "!b"])] == ["a", "c"]
    assert [s.name for s in select_scalers(scalers, ["c"])] == ["c"]
    with pytest.raises(ValueError, match=r"unknown scaler 'd'.*\['a', 'b', 'c'\]"):
        select_scalers(scalers, ["d"])
    with pytest.raises(ValueError, match="unknown scaler 'x'"):
        select_scalers(scalers, ["*", "!x"])


def test_pressure_level_rules():
    relu = pressure_level(VARIABLES, "relu", slope=0.001, y_intercept=0.2)
    torch.testing.assert_close(relu.values, torch.tensor([1.0, 0.85, 0.5]))
    linear = pressure_level(VARIABLES, "linear", slope=0.001)
    torch.testing.assert_close(linear.values, torch.tensor([1.0, 0.85, 0.5]))
    low = pressure_level(["t_50"], "relu", slope=0.001, y_intercept=0.2)
    torch.testing.assert_close(low.values, torch.tensor([0.2]))
    poly = pressure_level(["t_500"], "polynomial", slope=0.001, y_intercept=0.1, exponent=2)
    torch.testing.assert_close(poly.values, torch.tensor([0.25]))
    with pytest.raises(ValueError, match="choose from"):
        pressure_level(VARIABLES, "cubic")


def test_tendency_and_decay_values():
    scaler = tendency(["a", "b"], stdev=[10.0, 2.0], tendency_stdev=[1.0, 1.0])
    torch.testing.assert_close(scaler.values, torch.tensor([10.0, 2.0]))
    squared = tendency(["a", "b"], [10.0, 2.0], [1.0, 1.0], squared=True)
    torch.testing.assert_close(squared.values, torch.tensor([100.0, 4.0]))
    decay = lead_time_decay(3, rate=math.log(2))
    torch.testing.assert_close(decay.values, torch.tensor([1.0, 0.5, 0.25]))


def test_build_scalers_from_config_and_errors():
    stats = {"stdev": [1.0, 1.0, 1.0], "tendency_stdev": [0.5, 0.5, 0.5]}
    nodes = {"area_weight": torch.ones(4)}
    scalers = build_scalers(
        {
            "area": {"node_attribute": "area_weight"},
            "variable_weights": {"msl": 2.0},
            "tendency": {},
            "lead_time_decay": {"steps": 2, "rate": 0.1},
        },
        VARIABLES,
        stats,
        nodes,
    )
    assert set(scalers) == {"area", "variable_weights", "tendency", "lead_time_decay"}
    with pytest.raises(ValueError, match="data nodes do not have"):
        build_scalers({"mask": {"node_attribute": "lsm"}}, VARIABLES, stats, nodes)
    with pytest.raises(ValueError, match="unknown scaler 'wind'"):
        build_scalers({"wind": {}}, VARIABLES, stats, nodes)
    with pytest.raises(ValueError, match="not outputs"):
        build_scalers({"variable_weights": {"tp": 2.0}}, VARIABLES, stats, nodes)


def test_points_missing_in_the_data_add_no_loss():
    prediction, target = _pair()
    skip = torch.zeros_like(prediction, dtype=torch.bool)
    skip[0, 0, 0, 0, 0] = True
    loss = build_loss({"name": "mse", "scalers": []}, {})
    masked = prediction.clone()
    masked[0, 0, 0, 0, 0] = 0.0
    torch.testing.assert_close(loss(prediction, target, skip), masked.square().mean())
