"""Graphs of several datasets at once: one data node set per dataset, one shared hidden mesh.

Node sets are named after the datasets (`coarse`, `fine`, ...) next to `hidden`; every dataset
gets encoder edges (name -> hidden) and decoder edges (hidden -> name) built with the recipe's
encoder and decoder settings, so one graph serves any choice of input and output datasets.
The hidden mesh is built around the union of all grids (a limited area's margin covers them all).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch_geometric.data import HeteroData

from squall.graphs.attributes import area_weights
from squall.graphs.create import PROCESSOR, GraphBuilder
from squall.graphs.data_nodes import DataNodes, load_data_nodes
from squall.graphs.hidden_nodes import build_hidden_levels
from squall.graphs.io import save_graph
from squall.graphs.recipe import GraphRecipe, load_recipe


def encoder_edges(name: str) -> tuple[str, str, str]:
    return (name, "to", "hidden")


def decoder_edges(name: str) -> tuple[str, str, str]:
    return ("hidden", "to", name)


def combined_coordinates_hash(hashes: dict[str, str]) -> str:
    """The grid identity of a multi-dataset graph: each dataset's coordinates hash, by name."""
    return ";".join(f"{name}={hashes[name]}" for name in sorted(hashes))


def create_multi_dataset_graph(
    datasets: dict[str, DataNodes], recipe: GraphRecipe | dict | None = None
) -> HeteroData:
    """Graph with a data node set per dataset (its grid order kept, area weights as the recipe
    says), the hidden mesh around all of them, and encoder/decoder edges for each dataset."""
    recipe = recipe if isinstance(recipe, GraphRecipe) else load_recipe(recipe)
    if recipe.hidden.hierarchy:
        raise ValueError("hidden.hierarchy is not supported for several datasets; remove it")
    if recipe.hidden.area_mask:
        raise ValueError("hidden.area_mask is not supported for several datasets; remove it")
    if len(datasets) < 2:
        raise ValueError(f"a multi-dataset graph needs two datasets or more, got {list(datasets)}")
    builder = GraphBuilder(recipe)
    weights = recipe.data.area_weights
    for name, nodes in datasets.items():
        if name == "hidden" or name.startswith("hidden_"):
            raise ValueError(f"dataset name {name!r} clashes with the hidden node sets")
        latlon = nodes.latlon_rad
        builder.add_nodes(name, latlon)
        builder.graph[name].area_weight = area_weights(
            latlon[:, 0], latlon[:, 1], weights.method, weights.norm
        )
    union = DataNodes(
        np.concatenate([nodes.latitudes for nodes in datasets.values()]),
        np.concatenate([nodes.longitudes for nodes in datasets.values()]),
    )
    (hidden,) = build_hidden_levels(union, recipe.hidden)
    builder.add_nodes("hidden", hidden.latlon_rad)
    for name in datasets:
        builder.add_edges(f"encoder of {name}", encoder_edges(name), recipe.encoder)
    if recipe.processor is not None:
        builder.add_edges("processor", PROCESSOR, recipe.processor, hidden)
    for name in datasets:
        builder.add_edges(f"decoder of {name}", decoder_edges(name), recipe.decoder)
    return builder.graph


def data_nodes_of(spec: str | Path | dict[str, Any]) -> DataNodes:
    """The grid of a dataset, an .npz or a grid name (as load_data_nodes takes them), or of an
    open_dataset mapping such as {dataset: path, thinning: 2}."""
    if not isinstance(spec, dict):
        return load_data_nodes(spec)
    from squall.data.store import open_dataset

    dataset = open_dataset(spec)
    return DataNodes(dataset.latitudes, dataset.longitudes)


def create_multi_dataset_graph_file(
    recipe: str | Path | dict | None,
    datasets: dict[str, str | Path | dict[str, Any]],
    out_path: str | Path,
) -> Path:
    """The graph stage for several datasets: build on their grids, save with the combined hash."""
    graph_recipe = load_recipe(recipe)
    nodes = {name: data_nodes_of(spec) for name, spec in datasets.items()}
    graph = create_multi_dataset_graph(nodes, graph_recipe)
    return save_graph(
        graph,
        out_path,
        coordinates_hash=combined_coordinates_hash(
            {name: data.coordinates_hash for name, data in nodes.items()}
        ),
        config=graph_recipe.model_dump(mode="json"),
    )
