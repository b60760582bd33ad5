"""The graph stage: a graph recipe applied to a dataset's grid, saved with the grid's hash."""

from __future__ import annotations

from pathlib import Path

import yaml

from squall.data.store import open_dataset
from squall.graphs.create import build_graph_from_config, resolve_graph_config
from squall.graphs.io import save_graph


def load_graph_recipe(recipe: str | Path | dict | None) -> dict:
    if recipe is None or isinstance(recipe, dict):
        return resolve_graph_config(recipe)
    path = Path(recipe)
    if not path.is_file():
        raise FileNotFoundError(f"no graph recipe at {path}; see configs/graphs/ for examples")
    return resolve_graph_config(yaml.safe_load(path.read_text()) or {})


def create_graph_for_dataset(
    dataset_path: str | Path, out_path: str | Path, recipe: str | Path | dict | None = None
) -> Path:
    dataset = open_dataset(dataset_path)
    config = load_graph_recipe(recipe)
    graph = build_graph_from_config(dataset.latitudes, dataset.longitudes, config)
    return save_graph(graph, out_path, coordinates_hash=dataset.coordinates_hash, config=config)
