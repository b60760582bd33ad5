"""Graph recipes (configs/training/graph/*.yaml): one pydantic schema, so typos and bad values
fail with the key, the value and the nearest valid key before any graph is built."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from squall.graphs.attributes import AREA_WEIGHT_METHODS, NORMALISATIONS

Norm = Literal["none", "unit-max", "unit-sum", "unit-mean", "unit-std"]
assert set(Norm.__args__) == set(NORMALISATIONS)
PositiveInt = Annotated[int, Field(ge=1, strict=True)]
Level = Annotated[int, Field(ge=0, le=12, strict=True)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AreaWeights(Strict):
    method: Literal["spherical-voronoi", "cos-latitude"] = "cos-latitude"
    norm: Norm = "unit-mean"


assert set(AreaWeights.model_fields["method"].annotation.__args__) == set(AREA_WEIGHT_METHODS)


class DataNodesRecipe(Strict):
    area_weights: AreaWeights = AreaWeights()


class HiddenNodesRecipe(Strict):
    """The processor's node set "hidden" (and, for hierarchies, coarser sets hidden_2, ...)."""

    type: Literal["icosahedral", "healpix", "reduced-gaussian", "stretched"] = "icosahedral"
    refinement: Level | None = 5  # icosahedral / HEALPix level; stretched: the fine level
    grid: str | None = None  # reduced-gaussian: o48, o96, n320, o1280, ...
    coarse_refinement: Level | None = None  # stretched: the level outside the area
    # Limited area: keep only nodes within margin_km of the data nodes (of `area_mask` if set);
    # stretched: the area where the fine level is used.
    margin_km: Annotated[float, Field(ge=0)] | None = None
    area_mask: str | None = None
    # or the data nodes inside a box [south, north, west, east] (degrees), e.g. a stretched
    # mesh's area of interest within a regional grid
    area_box: tuple[float, float, float, float] | None = None
    # stretched on a regional grid: coarse nodes only within this distance of any data node
    coarse_margin_km: Annotated[float, Field(ge=0)] | None = None
    # Hierarchical: coarser levels under "hidden", finest first, e.g. [4, 3] -> hidden_2, hidden_3
    hierarchy: list[Level] = []

    @model_validator(mode="after")
    def _consistent(self) -> HiddenNodesRecipe:
        if self.type == "reduced-gaussian":
            if not self.grid or not re.fullmatch(r"[oOnN]\d+", self.grid):
                raise ValueError("hidden.type reduced-gaussian needs hidden.grid, e.g. o96")
        elif self.refinement is None:
            raise ValueError(f"hidden.type {self.type} needs hidden.refinement, e.g. 5")
        if self.area_mask is not None and self.area_box is not None:
            raise ValueError("give hidden.area_mask or hidden.area_box, not both")
        if self.type == "stretched":
            if self.coarse_refinement is None or self.margin_km is None:
                raise ValueError(
                    "hidden.type stretched needs hidden.coarse_refinement (the level outside "
                    "the area) and hidden.margin_km (how far the fine area reaches around the data)"
                )
            if self.coarse_refinement >= self.refinement:
                raise ValueError(
                    f"hidden.coarse_refinement ({self.coarse_refinement}) must be below "
                    f"hidden.refinement ({self.refinement}) for a stretched mesh"
                )
        if self.hierarchy:
            if self.type not in ("icosahedral", "healpix"):
                raise ValueError("hidden.hierarchy works with icosahedral or healpix nodes")
            levels = [self.refinement, *self.hierarchy]
            if any(fine <= coarse for fine, coarse in zip(levels, levels[1:], strict=False)):
                raise ValueError(
                    f"hidden.hierarchy {self.hierarchy} must list levels coarser than "
                    f"hidden.refinement ({self.refinement}), finest first, e.g. [4, 3]"
                )
        return self


class EdgeRecipe(Strict):
    """One edge set. knn: the k nearest sources of every target; cutoff: sources within
    cutoff_factor x the largest nearest-neighbour spacing of the targets (closest
    max_neighbours kept); multiscale: icosahedral mesh edges of `levels` (default 1..R)."""

    type: Literal["knn", "cutoff", "multiscale"]
    k: PositiveInt | None = None
    cutoff_factor: Annotated[float, Field(gt=0)] | None = None
    max_neighbours: PositiveInt = 64
    levels: list[Level] | None = None
    source_mask: str | None = None
    target_mask: str | None = None

    @model_validator(mode="after")
    def _parameters(self) -> EdgeRecipe:
        needed = {"knn": "k", "cutoff": "cutoff_factor"}.get(self.type)
        if needed and getattr(self, needed) is None:
            raise ValueError(f"edges of type {self.type} need {needed}")
        return self


class EdgeAttributesRecipe(Strict):
    length_norm: Norm = "unit-max"
    direction_norm: Norm = "none"


class GraphRecipe(Strict):
    data: DataNodesRecipe = DataNodesRecipe()
    hidden: HiddenNodesRecipe = HiddenNodesRecipe()
    encoder: EdgeRecipe = EdgeRecipe(type="cutoff", cutoff_factor=0.6)
    # None: no hidden -> hidden edges (encoder-decoder only, e.g. for a transformer processor)
    processor: EdgeRecipe | None = EdgeRecipe(type="multiscale")
    decoder: EdgeRecipe = EdgeRecipe(type="knn", k=3)
    # Hierarchies: fine -> coarse (down) and coarse -> fine (up) edges between hidden levels
    down: EdgeRecipe = EdgeRecipe(type="cutoff", cutoff_factor=0.6)
    up: EdgeRecipe = EdgeRecipe(type="knn", k=3)
    edge_attributes: EdgeAttributesRecipe = EdgeAttributesRecipe()

    @model_validator(mode="after")
    def _multiscale_on_icosahedra(self) -> GraphRecipe:
        for name in ("encoder", "decoder", "down", "up"):
            if getattr(self, name).type == "multiscale":
                raise ValueError(
                    f"{name} edges cannot be multiscale (mesh edges): use knn or cutoff"
                )
        if (
            self.processor is not None
            and self.processor.type == "multiscale"
            and self.hidden.type not in ("icosahedral", "stretched")
        ):
            raise ValueError(
                f"processor type multiscale needs icosahedral or stretched hidden nodes, not "
                f"{self.hidden.type}; use processor: {{type: knn, k: 8}}"
            )
        return self


def _nearest_key(error: dict[str, Any]) -> str:
    """' Did you mean ...?' for an unknown key, from the fields of the model it was found in."""
    model: type[BaseModel] | None = GraphRecipe
    for part in error["loc"][:-1]:
        field = model.model_fields.get(str(part)) if model else None
        annotation = field.annotation if field else None
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        model = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
    if model is None:
        return ""
    close = difflib.get_close_matches(str(error["loc"][-1]), list(model.model_fields), n=1)
    return (
        f" Did you mean {close[0]!r}?" if close else f" Valid keys: {', '.join(model.model_fields)}"
    )


def parse_recipe(config: dict[str, Any] | None, source: str = "graph recipe") -> GraphRecipe:
    """Validate a recipe dict; errors name the key, the bad value and the nearest valid key."""
    try:
        return GraphRecipe.model_validate(config or {})
    except ValidationError as error:
        lines = []
        for item in error.errors():
            key = ".".join(str(part) for part in item["loc"]) or "(top level)"
            if item["type"] == "extra_forbidden":
                lines.append(f"unknown key {key!r}.{_nearest_key(item)}")
            else:
                value = item.get("input")
                lines.append(f"{key}={value!r}: {item['msg'].removeprefix('Value error, ')}")
        raise ValueError(f"{source} is invalid:\n  " + "\n  ".join(lines)) from None


def load_recipe(path: str | Path | dict | None) -> GraphRecipe:
    """A recipe from a YAML file (configs/training/graph/*.yaml), a dict, or the defaults."""
    if path is None or isinstance(path, dict):
        return parse_recipe(path)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no graph recipe at {path}; see configs/training/graph/ for templates"
        )
    return parse_recipe(yaml.safe_load(path.read_text()), f"graph recipe {path}")
