"""Hidden (processor) node sets of a recipe: global, limited-area, stretched, hierarchical."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from squall.data.coordinates import in_box
from squall.graphs.data_nodes import DataNodes
from squall.graphs.grids import healpix_grid, reduced_gaussian_grid
from squall.graphs.nodes import icosahedral_coarse_mask, icosahedral_nodes, restrict_to_area
from squall.graphs.recipe import HiddenNodesRecipe
from squall.graphs.spherical import latlon_order


@dataclass(frozen=True)
class HiddenNodes:
    """Node coordinates [lat, lon] in radians, sorted by latitude then longitude.

    `keep` is the mask of the kept nodes within the full icosahedral level `refinement`
    (for mesh edges); None for node sets that are not icosahedral.
    """

    latlon_rad: np.ndarray
    refinement: int | None = None
    keep: np.ndarray | None = None


def _sorted(lat_deg: np.ndarray, lon_deg: np.ndarray) -> np.ndarray:
    lat, lon = np.deg2rad(lat_deg), np.deg2rad(lon_deg)
    order = latlon_order(lat, lon)
    return np.stack([lat[order], lon[order]], axis=1)


def _area(data: DataNodes, recipe: HiddenNodesRecipe) -> np.ndarray:
    """[lat, lon] radians of the data nodes that define the area (the masked ones, if any)."""
    latlon = data.latlon_rad
    if recipe.area_box is not None:
        inside = in_box(*np.rad2deg(latlon).T, recipe.area_box)
        if not inside.any():
            raise ValueError(f"no data node lies inside hidden.area_box {list(recipe.area_box)}")
        return latlon[inside]
    if recipe.area_mask is None:
        return latlon
    if recipe.area_mask not in data.masks:
        raise ValueError(
            f"hidden.area_mask {recipe.area_mask!r} is not a mask of the data nodes; they have "
            f"{sorted(data.masks) or 'no masks'}"
        )
    return latlon[data.masks[recipe.area_mask]]


def _level_nodes(recipe: HiddenNodesRecipe, refinement: int | None) -> HiddenNodes:
    if recipe.type == "healpix":
        return HiddenNodes(_sorted(*healpix_grid(refinement)))
    if recipe.type == "reduced-gaussian":
        return HiddenNodes(_sorted(*reduced_gaussian_grid(recipe.grid)))
    lat, lon, _ = icosahedral_nodes(refinement)
    return HiddenNodes(np.stack([lat, lon], axis=1), refinement, np.ones(len(lat), dtype=bool))


def build_hidden_levels(data: DataNodes, recipe: HiddenNodesRecipe) -> list[HiddenNodes]:
    """The hidden node set, then the coarser levels of a hierarchy (finest first)."""
    area = _area(data, recipe)
    levels = []
    for refinement in [recipe.refinement, *recipe.hierarchy]:
        nodes = _level_nodes(recipe, refinement)
        lat, lon = nodes.latlon_rad.T
        if recipe.type == "stretched":
            # Fine nodes inside the area, the coarse level's nodes (a subset: icosahedra nest)
            # everywhere, so that mesh edges of the coarse levels cover the whole globe.
            inside = restrict_to_area(lat, lon, area[:, 0], area[:, 1], recipe.margin_km)
            coarse = icosahedral_coarse_mask(refinement, recipe.coarse_refinement)
            if recipe.coarse_margin_km is not None:  # a regional grid: no empty globe around it
                grid = data.latlon_rad
                coarse &= restrict_to_area(
                    lat, lon, grid[:, 0], grid[:, 1], recipe.coarse_margin_km
                )
            keep = inside | coarse
        elif recipe.margin_km is not None:
            keep = restrict_to_area(lat, lon, area[:, 0], area[:, 1], recipe.margin_km)
        else:
            levels.append(nodes)
            continue
        if keep.sum() < 2:
            raise ValueError(
                f"only {int(keep.sum())} hidden nodes lie within margin_km={recipe.margin_km} km "
                "of the data nodes; increase hidden.margin_km or hidden.refinement"
            )
        icosahedral = nodes.keep is not None
        levels.append(
            HiddenNodes(nodes.latlon_rad[keep], refinement, keep if icosahedral else None)
        )
    return levels
