"""Build the encoder-processor-decoder graph of a data grid from a graph recipe."""

from __future__ import annotations

from functools import partial

import numpy as np
import torch
from torch_geometric.data import HeteroData

from squall.graphs.attributes import area_weights, edge_attributes
from squall.graphs.data_nodes import DataNodes
from squall.graphs.edges import cutoff_edges, knn_edges, masked_edges, multiscale_mesh_edges
from squall.graphs.hidden_nodes import HiddenNodes, build_hidden_levels
from squall.graphs.nodes import icosahedral_level_edges
from squall.graphs.recipe import EdgeRecipe, GraphRecipe, load_recipe
from squall.graphs.spherical import latlon_to_xyz

ENCODER = ("data", "to", "hidden")
PROCESSOR = ("hidden", "to", "hidden")
DECODER = ("hidden", "to", "data")


def hidden_name(level: int) -> str:
    """Node set name of hierarchy level `level` (0 = finest = "hidden")."""
    return "hidden" if level == 0 else f"hidden_{level + 1}"


def _mask(graph: HeteroData, node_set: str, name: str | None, role: str) -> np.ndarray | None:
    if name is None:
        return None
    if name not in graph[node_set]:
        present = [key for key in graph[node_set].keys() if key not in ("x",)]
        raise ValueError(
            f"{role} mask {name!r} is not an attribute of the {node_set!r} nodes; they have "
            f"{present}"
        )
    return graph[node_set][name].numpy().astype(bool)


def _edge_index(
    recipe: EdgeRecipe,
    graph: HeteroData,
    source: str,
    target: str,
    hidden: HiddenNodes | None = None,
) -> torch.Tensor:
    source_xyz = latlon_to_xyz(*graph[source].x.double().numpy().T)
    target_xyz = latlon_to_xyz(*graph[target].x.double().numpy().T)
    if recipe.type == "knn":
        builder = partial(knn_edges, k=recipe.k)
    elif recipe.type == "cutoff":
        builder = partial(
            cutoff_edges, cutoff_factor=recipe.cutoff_factor, max_neighbours=recipe.max_neighbours
        )
    else:  # multiscale: the kept nodes' icosahedral mesh edges; masks don't apply
        assert hidden is not None and hidden.keep is not None and hidden.refinement is not None
        levels = recipe.levels
        if levels is not None:  # coarser levels of a hierarchy use the levels they have
            levels = [level for level in levels if level <= hidden.refinement]
        levels = icosahedral_level_edges(hidden.refinement, levels)
        return multiscale_mesh_edges(levels, hidden.keep)
    source_mask = _mask(graph, source, recipe.source_mask, "source")
    target_mask = _mask(graph, target, recipe.target_mask, "target")
    if source_mask is None and target_mask is None:
        return builder(source_xyz, target_xyz)
    return masked_edges(builder, source_xyz, target_xyz, source_mask, target_mask)


def _add_edges(
    graph: HeteroData,
    edge_type: tuple[str, str, str],
    recipe: EdgeRecipe,
    attributes_recipe,
    hidden: HiddenNodes | None = None,
) -> None:
    source, _, target = edge_type
    try:
        edge_index = _edge_index(recipe, graph, source, target, hidden)
    except ValueError as error:
        raise ValueError(f"{source} -> {target} edges ({recipe.type}): {error}") from error
    graph[edge_type].edge_index = edge_index
    graph[edge_type].edge_attr = edge_attributes(
        graph[source].x,
        graph[target].x,
        edge_index,
        attributes_recipe.length_norm,
        attributes_recipe.direction_norm,
    )


def create_graph(data: DataNodes, recipe: GraphRecipe | dict | None = None) -> HeteroData:
    """Graph with node sets "data" (the grid) and "hidden" (plus "hidden_2", ... for a
    hierarchy) and edge sets data->hidden (encoder), hidden->hidden (processor, unless the
    recipe has none) and hidden->data (decoder); hierarchies add down/up edges and a processor
    per level. Data nodes keep the grid's order; hidden nodes are sorted by latitude, longitude.
    """
    recipe = recipe if isinstance(recipe, GraphRecipe) else load_recipe(recipe)
    graph = HeteroData()
    latlon = data.latlon_rad
    graph["data"].x = torch.from_numpy(latlon.astype(np.float32))
    weights = recipe.data.area_weights
    graph["data"].area_weight = area_weights(
        latlon[:, 0], latlon[:, 1], weights.method, weights.norm
    )
    for name, mask in data.masks.items():
        graph["data"][name] = torch.from_numpy(np.asarray(mask, dtype=bool))
    levels = build_hidden_levels(data, recipe.hidden)
    for level, nodes in enumerate(levels):
        graph[hidden_name(level)].x = torch.from_numpy(nodes.latlon_rad.astype(np.float32))

    attributes = recipe.edge_attributes
    _add_edges(graph, ENCODER, recipe.encoder, attributes)
    for level, nodes in enumerate(levels):
        name = hidden_name(level)
        if level > 0:
            finer = hidden_name(level - 1)
            _add_edges(graph, (finer, "to", name), recipe.down, attributes)
            _add_edges(graph, (name, "to", finer), recipe.up, attributes)
        if recipe.processor is not None:
            _add_edges(graph, (name, "to", name), recipe.processor, attributes, nodes)
    _add_edges(graph, DECODER, recipe.decoder, attributes)
    return graph


def build_graph(
    latitudes_deg: np.ndarray,
    longitudes_deg: np.ndarray,
    *,
    mesh_refinement: int = 5,
    margin_km: float = 300.0,
    encoder_cutoff_factor: float = 0.6,
    decoder_knn: int = 3,
    max_neighbours: int = 64,
) -> HeteroData:
    """Shortcut for a limited-area graph of a grid given as arrays (degrees): icosahedral
    hidden nodes within `margin_km` of the grid, cut-off encoder, multi-scale processor,
    k-NN decoder, cos(latitude) area weights of mean 1 (configs/training/graph/limited_area)."""
    recipe = {
        "hidden": {"refinement": mesh_refinement, "margin_km": margin_km},
        "encoder": {
            "type": "cutoff",
            "cutoff_factor": encoder_cutoff_factor,
            "max_neighbours": max_neighbours,
        },
        "decoder": {"type": "knn", "k": decoder_knn},
    }
    return create_graph(DataNodes(latitudes_deg, longitudes_deg), recipe)
