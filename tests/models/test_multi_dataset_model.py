"""The multi-dataset model: per-dataset encoders into one hidden mesh, per-dataset decoders."""

from __future__ import annotations

import pytest
import torch
from multi_dataset_graph import (
    DOWNSCALER,
    FORECASTER,
    multi_dataset_graph,
    spec,
    statistics,
)

from squall.models.multi_dataset import MultiDatasetModel

TIME = torch.tensor([820800000, 820821600])  # 1996-01-05T00, T06


@pytest.fixture(scope="module")
def graph():
    return multi_dataset_graph()


def _model(graph, datasets, lead_steps, input_steps=1):
    stats = {name: statistics(d["variables"]) for name, d in datasets.items()}
    return MultiDatasetModel(graph, spec(datasets, lead_steps, input_steps), stats)


def test_downscaler_maps_the_coarse_grid_to_the_fine_grid(graph):
    model = _model(graph, DOWNSCALER, lead_steps=0)
    assert model.input_names == ["coarse"] and model.output_names == ["fine"]
    coarse = torch.randn(2, 1, 3, 20, 2)  # (batch, time, ensemble, coarse grid, variables)
    out = model.forward_normalised({"coarse": coarse}, TIME)
    assert set(out) == {"fine"} and out["fine"].shape == (2, 3, 80, 1)
    # The output layer starts at zero: an untrained downscaler is the linear interpolation of
    # the coarse field of the same name (t): exact at the coarse points (every other row and
    # column of the fine grid), the mean of its neighbours half-way along a row.
    coarse_t = (coarse * 2 + 10)[:, 0, ..., 0].reshape(2, 3, 5, 4)
    physical = model.predict({"coarse": coarse * 2 + 10}, TIME)["fine"].reshape(2, 3, 10, 8)
    torch.testing.assert_close(physical[..., ::2, ::2], coarse_t)
    halfway = (coarse_t[..., :, :-1] + coarse_t[..., :, 1:]) / 2
    torch.testing.assert_close(physical[..., ::2, 1:-1:2], halfway)


def test_forecaster_on_two_grids_starts_as_persistence(graph):
    model = _model(graph, FORECASTER, lead_steps=1, input_steps=2)
    x = {"coarse": torch.randn(2, 2, 1, 20, 2), "fine": torch.randn(2, 2, 1, 80, 2)}
    out = model.forward_normalised(x, TIME)
    assert out["coarse"].shape == (2, 1, 20, 2) and out["fine"].shape == (2, 1, 80, 1)
    torch.testing.assert_close(out["fine"][..., 0], x["fine"][:, -1, ..., 0])  # t, not lsm
    torch.testing.assert_close(out["coarse"], x["coarse"][:, -1])


def test_every_dataset_reaches_every_output(graph):
    """Gradients of the fine output reach both encoders (one shared hidden mesh)."""
    model = _model(graph, FORECASTER, lead_steps=1)
    for head in model.network.output_mlps.values():  # leave the zero start
        torch.nn.init.normal_(
            [m for m in head.modules() if isinstance(m, torch.nn.Linear)][-1].weight
        )
    x = {"coarse": torch.randn(1, 1, 1, 20, 2), "fine": torch.randn(1, 1, 1, 80, 2)}
    model.forward_normalised(x, TIME[:1])["fine"].sum().backward()
    for name in ("coarse", "fine"):
        grads = [p.grad for p in model.network.encoders[name].parameters()]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), name


def test_wrong_grid_is_refused(graph):
    model = _model(graph, DOWNSCALER, lead_steps=0)
    with pytest.raises(ValueError, match="dataset 'coarse': expected .* 20 grid points"):
        model.forward_normalised({"coarse": torch.randn(1, 1, 1, 80, 2)}, TIME[:1])
    with pytest.raises(ValueError, match="reads the datasets \\['coarse'\\]"):
        model.forward_normalised({"fine": torch.randn(1, 1, 1, 80, 1)}, TIME[:1])
