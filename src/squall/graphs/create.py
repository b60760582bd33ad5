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


class GraphBuilder:
    """Builds one graph from a recipe (single- and multi-dataset graphs share it). Holds the
    graph under construction and its float64 coordinates (the float32 copies in the graph
    would make edge attributes depend on how a longitude was written)."""

    def __init__(self, recipe: GraphRecipe) -> None:
        self.recipe = recipe
        self.graph = HeteroData()
        self.latlon: dict[str, np.ndarray] = {}
        self.xyz: dict[str, np.ndarray] = {}

    def add_nodes(self, name: str, latlon_rad: np.ndarray) -> None:
        self.latlon[name] = latlon_rad
        self.xyz[name] = latlon_to_xyz(latlon_rad[:, 0], latlon_rad[:, 1])
        self.graph[name].x = torch.from_numpy(latlon_rad.astype(np.float32))

    def _mask(self, node_set: str, name: str | None, role: str) -> np.ndarray | None:
        if name is None:
            return None
        if name not in self.graph[node_set]:
            present = [key for key in self.graph[node_set].keys() if key != "x"]
            raise ValueError(
                f"{role} mask {name!r} is not an attribute of the {node_set!r} nodes; they have "
                f"{present or 'none'}"
            )
        return self.graph[node_set][name].numpy().astype(bool)

    def _edge_index(
        self, recipe: EdgeRecipe, source: str, target: str, hidden: HiddenNodes | None
    ) -> torch.Tensor:
        if recipe.type == "multiscale":  # the kept nodes' icosahedral mesh edges
            assert hidden is not None and hidden.keep is not None and hidden.refinement is not None
            levels = recipe.levels
            if levels is not None:  # coarser levels of a hierarchy use the levels they have
                levels = [level for level in levels if level <= hidden.refinement]
            return multiscale_mesh_edges(
                icosahedral_level_edges(hidden.refinement, levels), hidden.keep
            )
        if recipe.type == "knn":
            builder = partial(knn_edges, k=recipe.k)
        else:
            builder = partial(
                cutoff_edges,
                cutoff_factor=recipe.cutoff_factor,
                max_neighbours=recipe.max_neighbours,
            )
        source_mask = self._mask(source, recipe.source_mask, "source")
        target_mask = self._mask(target, recipe.target_mask, "target")
        if source_mask is None and target_mask is None:
            return builder(self.xyz[source], self.xyz[target])
        return masked_edges(builder, self.xyz[source], self.xyz[target], source_mask, target_mask)

    def add_edges(
        self,
        role: str,
        edge_type: tuple[str, str, str],
        recipe: EdgeRecipe,
        hidden: HiddenNodes | None = None,
    ) -> None:
        source, _, target = edge_type
        try:
            edge_index = self._edge_index(recipe, source, target, hidden)
        except ValueError as error:
            hint = ""
            margin = self.recipe.hidden.margin_km
            if role == "encoder" and recipe.type == "cutoff" and margin is not None:
                hint = (
                    f" Hidden nodes are kept up to hidden.margin_km={margin} km from the data: "
                    "raise encoder.cutoff_factor, lower hidden.margin_km, or use a coarser "
                    f"hidden.refinement (now {self.recipe.hidden.refinement})."
                )
            raise ValueError(
                f"{role} edges ({source} -> {target}, {recipe.type}): {error}.{hint}"
            ) from error
        norms = self.recipe.edge_attributes
        self.graph[edge_type].edge_index = edge_index
        self.graph[edge_type].edge_attr = edge_attributes(
            self.latlon[source],
            self.latlon[target],
            edge_index,
            norms.length_norm,
            norms.direction_norm,
        )


def create_graph(data: DataNodes, recipe: GraphRecipe | dict | None = None) -> HeteroData:
    """Graph with node sets "data" (the grid) and "hidden" (plus "hidden_2", ... for a
    hierarchy) and edge sets data->hidden (encoder), hidden->hidden (processor, unless the
    recipe has none) and hidden->data (decoder); hierarchies add down/up edges and a processor
    per level. Data nodes keep the grid's order; hidden nodes are sorted by latitude, longitude.
    """
    recipe = recipe if isinstance(recipe, GraphRecipe) else load_recipe(recipe)
    builder = GraphBuilder(recipe)
    latlon = data.latlon_rad
    builder.add_nodes("data", latlon)
    weights = recipe.data.area_weights
    builder.graph["data"].area_weight = area_weights(
        latlon[:, 0], latlon[:, 1], weights.method, weights.norm
    )
    for name, mask in data.masks.items():
        builder.graph["data"][name] = torch.from_numpy(np.asarray(mask, dtype=bool))
    levels = build_hidden_levels(data, recipe.hidden)
    for level, nodes in enumerate(levels):
        builder.add_nodes(hidden_name(level), nodes.latlon_rad)

    builder.add_edges("encoder", ENCODER, recipe.encoder)
    for level, nodes in enumerate(levels):
        name = hidden_name(level)
        if level > 0:
            finer = hidden_name(level - 1)
            builder.add_edges("down", (finer, "to", name), recipe.down)
            builder.add_edges("up", (name, "to", finer), recipe.up)
        if recipe.processor is not None:
            builder.add_edges("processor", (name, "to", name), recipe.processor, nodes)
    builder.add_edges("decoder", DECODER, recipe.decoder)
    return builder.graph


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
