"""Model-sharding cases beyond the plain processors of sharding_cases, on its tiny model: a
limited-area forecaster (forced points overwritten with the truth at every rollout step, loss
inside the domain only), a diffusion forecaster (one denoising step at seeded noise levels) and
a forecaster with a hierarchical processor (three mesh levels, each sharded)."""

from __future__ import annotations

from functools import cache, partial

import torch
import yaml
from sharding_cases import (
    AREA,
    INSIDE,
    STATISTICS,
    build_model,
    output_scalers,
    task_config,
)
from storm_sample import REPO
from tiny_graph import tiny_graph

from squall.graphs.create import create_graph
from squall.graphs.data_nodes import DataNodes
from squall.training.diffusion_forecaster import DiffusionForecaster
from squall.training.forecaster import Forecaster
from squall.training.losses import build_loss

DIFFUSION = {"prediction": "tendency", "noise_distribution": "lognormal"}


def limited_area() -> Forecaster:
    """The GNN forecaster of a region: the points outside INSIDE are forced to the truth, and
    the network reads that truth at the target time (each shard its slice)."""
    network = {"processor": "gnn", "mapper": "gnn", "num_chunks": 2}
    boundary = {"domain_mask": "inside", "ring_width": 0, "target_forcing": True}
    model = build_model(network, boundary=boundary)
    loss = build_loss({"name": "mse", "scalers": ["area", "domain"]}, output_scalers(True))
    return Forecaster(model, task_config(), STATISTICS, loss, AREA * INSIDE)


def diffusion(processor: str) -> DiffusionForecaster:
    """The EDM forecaster of `processor`: the noise level enters its conditional norms."""
    network = {"processor": processor, "num_heads": 4, "window_size": 6, "noise_channels": 4}
    if processor == "graphtransformer":
        network["mapper"] = "graphtransformer"
    model = build_model(network, diffusion=DIFFUSION)
    loss = build_loss({"name": "mse", "scalers": ["area", "variable_weights"]}, output_scalers())
    config = task_config() | {"training": {"seed": 11}}
    return DiffusionForecaster(model, config, STATISTICS, loss, AREA)


@cache
def hierarchical_graph():
    """The graph builder's hierarchical recipe on the tiny grid: icosahedral levels 4, 3 and 2
    near it (82, 22 and 7 nodes: at least one per rank of 4 shards)."""
    points = torch.rad2deg(tiny_graph(num_data=37)["data"].x.double()).numpy()
    recipe = yaml.safe_load((REPO / "configs/training/graph/hierarchical.yaml").read_text())
    recipe["hidden"] |= {"refinement": 4, "hierarchy": [3, 2], "margin_km": 500.0}
    recipe["encoder"]["cutoff_factor"] = recipe["down"]["cutoff_factor"] = 2.0
    return create_graph(DataNodes(points[:, 0], points[:, 1]), recipe)


def hierarchical(processor: str) -> Forecaster:
    network = {"processor": processor, "mapper": "gnn", "num_heads": 2, "hierarchy_levels": 3}
    model = build_model(network, graph=hierarchical_graph().clone())
    loss = build_loss({"name": "mse", "scalers": ["area", "variable_weights"]}, output_scalers())
    return Forecaster(model, task_config(), STATISTICS, loss, AREA)


CASES = {
    "limited_area": limited_area,
    "diffusion_graphtransformer": partial(diffusion, "graphtransformer"),
    "diffusion_transformer": partial(diffusion, "transformer"),
    "hierarchical_gnn": partial(hierarchical, "gnn"),
    "hierarchical_graphtransformer": partial(hierarchical, "graphtransformer"),
}
