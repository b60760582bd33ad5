"""The graph stage: a graph recipe applied to a dataset's grid, saved with the grid's hash."""

from __future__ import annotations

from pathlib import Path

from squall.graphs.create import create_graph
from squall.graphs.data_nodes import load_data_nodes
from squall.graphs.io import save_graph
from squall.graphs.recipe import load_recipe


def create_graph_for_dataset(
    recipe: str | Path | dict | None, dataset: str | Path, out_path: str | Path
) -> Path:
    """Build the graph of `recipe` (a configs/training/graph/*.yaml file, a dict, or None for
    the defaults) on the grid of `dataset` (a .zarr dataset, an .npz or a grid name such as
    o96) and write it atomically to `out_path` with the grid's coordinates hash."""
    graph_recipe = load_recipe(recipe)
    data = load_data_nodes(dataset)
    graph = create_graph(data, graph_recipe)
    return save_graph(
        graph,
        out_path,
        coordinates_hash=data.coordinates_hash,
        config=graph_recipe.model_dump(mode="json"),
    )
