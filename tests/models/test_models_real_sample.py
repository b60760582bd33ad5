"""On the real storm sample: every model template builds and runs, and a tiny model of each
processor kind overfits one sample (the network can represent a real 6 h step)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import zarr
from storm_sample import REPO, pipeline_overrides

from squall.config.compose import load_config
from squall.data.statistics import load_statistics
from squall.graphs.io import load_graph
from squall.models.interface import ForecastModel
from squall.training.preflight import model_statistics
from squall.training.trainer import build_model_spec

TEMPLATES = {  # the full sizes: (processor, mapper, channels, layers, heads)
    "gnn": ("gnn", "gnn", 512, 16, None),
    "graphtransformer": ("graphtransformer", "graphtransformer", 1024, 16, 16),
    "transformer": ("transformer", "graphtransformer", 1024, 16, 16),
    "gnn_small": ("gnn", "gnn", 64, 4, None),
}


@pytest.fixture(scope="module")
def storm(storm_inputs, tmp_path_factory):
    graph, _ = load_graph(storm_inputs["graph"])
    data = zarr.open_group(str(storm_inputs["dataset"]), mode="r")
    variables = list(data.attrs["variables"])
    dates = np.asarray(data["dates"][:]).astype("datetime64[s]").astype(np.int64)
    return {
        "graph": graph,
        "variables": variables,
        # (dates, variables, ensembles, grid) -> (dates, ensembles, grid, variables)
        "fields": torch.from_numpy(np.asarray(data["data"][10:13])).permute(0, 2, 3, 1).float(),
        "times": torch.from_numpy(dates[10:13]),
        "statistics": load_statistics(storm_inputs["statistics"]),
        "overrides": pipeline_overrides(storm_inputs, tmp_path_factory.mktemp("models")),
    }


def _model(storm, template: str, overrides: list[str]) -> ForecastModel:
    config = load_config(
        "config", [*storm["overrides"], f"model={template}", *overrides], REPO / "configs/training"
    )
    spec = build_model_spec(config, storm["variables"])
    statistics = model_statistics(storm["statistics"], storm["variables"], config.data.timestep)
    torch.manual_seed(0)
    return ForecastModel(storm["graph"], spec, statistics)


@pytest.mark.parametrize("template", TEMPLATES)
def test_each_model_template_has_the_documented_size_and_runs(storm, template):
    processor, mapper, channels, layers, heads = TEMPLATES[template]
    config = load_config(
        "config", [*storm["overrides"], f"model={template}"], REPO / "configs/training"
    )
    assert (config.model.processor, config.model.mapper) == (processor, mapper)
    assert (config.model.hidden_channels, config.model.processor_layers) == (channels, layers)
    assert heads is None or config.model.num_heads == heads
    # Built shrunk (the full sizes take minutes on a CPU); the template's other keys are used.
    model = _model(storm, template, ["model.hidden_channels=32", "model.processor_layers=1"])
    x = storm["fields"][None, :2]
    state = model.normalizer.normalise(x)
    out = model.forward_normalised(state, storm["times"][None, 2])
    assert out.shape == (1, 1, 726, len(storm["variables"])) and torch.isfinite(out).all()


def test_the_storm_pipeline_default_stays_small(storm):
    config = load_config("config", storm["overrides"], REPO / "configs/training")
    assert (config.model.hidden_channels, config.model.processor_layers) == (64, 4)


@pytest.mark.parametrize("template", ["gnn", "graphtransformer", "transformer"])
def test_a_tiny_model_overfits_one_real_sample(storm, template):
    small = ["model.hidden_channels=32", "model.processor_layers=2", "model.num_heads=4"]
    model = _model(storm, template, [*small, "model.window_size=32"])
    data = model.normalizer.normalise(storm["fields"][None])  # (1, 3, E, G, V)
    target = data[:, 2][..., model.output_columns]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        optimizer.zero_grad()
        prediction = model.forward_normalised(data[:, :2], storm["times"][None, 2])
        loss = torch.nn.functional.mse_loss(prediction, target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # The first loss is persistence's (zero-initialised output layer).
    assert losses[-1] < losses[0] / 10, f"{template}: {losses[0]:.4f} -> {losses[-1]:.4f}"


def test_hierarchical_variant_runs_on_a_hierarchical_graph_of_the_storm_grid(storm_inputs):
    """The graph builder's hierarchical recipe (hidden, hidden_2, hidden_3 with down/up edges),
    made regional, feeds the hierarchical model as it is."""
    import yaml

    from squall.graphs.create import create_graph
    from squall.graphs.data_nodes import load_data_nodes
    from squall.models.encoder_processor_decoder import EncoderProcessorDecoder

    recipe = yaml.safe_load((REPO / "configs/training/graph/hierarchical.yaml").read_text())
    recipe["hidden"]["margin_km"] = 300.0  # the regional storm grid: keep nodes near it
    recipe["encoder"]["cutoff_factor"] = recipe["down"]["cutoff_factor"] = 1.2
    graph = create_graph(load_data_nodes(storm_inputs["dataset"]), recipe)
    torch.manual_seed(0)
    model = EncoderProcessorDecoder(
        graph, 10, 6, hidden_channels=32, processor_layers=1, hierarchy_levels=3
    )
    y = model(torch.randn(1, 726, 10))
    y.square().mean().backward()
    assert y.shape == (1, 726, 6) and torch.isfinite(y).all()
    assert all(p.grad is not None for p in model.parameters())
