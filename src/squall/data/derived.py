"""Derived datasets: a selection or combination of existing stores (an open_dataset mapping,
e.g. a `cutout` of a regional and a global dataset) written as a store of its own, so that every
command that takes a dataset path (graph, statistics, training, predict, evaluate) can use it.

A derived recipe (configs/datasets/<name>.yaml) holds `derived:`, the mapping, whose stores are
named by path; description, licence and attribution are copied into the store as for a recipe.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from squall.data.dates import frequency_to_string
from squall.data.store import open_dataset
from squall.data.store_write import write_dataset

DESCRIPTIVE_KEYS = ("description", "licence", "attribution")


def load_derived_recipe(path: str | os.PathLike) -> dict[str, Any]:
    recipe = yaml.safe_load(Path(path).read_text())
    if not isinstance(recipe, dict) or not isinstance(recipe.get("derived"), dict):
        raise ValueError(
            f"{path} is not a derived dataset recipe: it needs `derived:`, an open_dataset "
            "mapping such as {cutout: [{dataset: regional.zarr}, {dataset: global.zarr}]}"
        )
    unknown = set(recipe) - {"derived", *DESCRIPTIVE_KEYS}
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)} in a derived dataset recipe")
    return recipe


def stores_of(mapping: Any) -> list[str]:
    """The store paths an open_dataset mapping names (the inputs of a derived dataset)."""
    if isinstance(mapping, dict):
        return sorted({p for value in mapping.values() for p in stores_of(value)})
    if isinstance(mapping, list | tuple):
        return sorted({p for value in mapping for p in stores_of(value)})
    return [mapping] if isinstance(mapping, str) and mapping.endswith(".zarr") else []


def _statistics(dataset) -> tuple[dict | None, dict]:
    """The stored statistics the view gives (a cut-out: its global part's), with their period,
    and the tendency statistics at the dataset's step; none where the sources lack them."""
    metadata = dataset.metadata
    period = (metadata.get("statistics_start_date"), metadata.get("statistics_end_date"))
    try:
        statistics = {**dataset.statistics, "period": {"start": period[0], "end": period[1]}}
    except KeyError:
        return None, {}
    if None in period:
        return None, {}
    delta = frequency_to_string(dataset.frequency)
    try:
        return statistics, {delta: dataset.statistics_tendencies(delta)}
    except KeyError:
        return statistics, {}


def create_derived_dataset(recipe_path: str | os.PathLike, out: str | os.PathLike) -> Path:
    """`squall dataset derive`: the recipe's mapping, read whole, written to `out` atomically."""
    recipe = load_derived_recipe(recipe_path)
    dataset = open_dataset(recipe["derived"])
    data = dataset.read(list(range(len(dataset))), allow_missing=True)
    statistics, tendencies = _statistics(dataset)
    metadata = dataset.metadata
    extra = {key: recipe[key] for key in DESCRIPTIVE_KEYS if key in recipe}
    if "grids" in metadata:
        extra["grids"] = [int(n) for n in metadata["grids"]]
    return write_dataset(
        out,
        data=data,
        dates=dataset.dates,
        latitudes=dataset.latitudes,
        longitudes=dataset.longitudes,
        variables=list(dataset.variables),
        frequency=dataset.frequency,
        field_shape=tuple(dataset.field_shape),
        missing_dates=list(np.asarray(dataset.dates)[sorted(dataset.missing)]),
        variables_metadata=metadata.get("variables_metadata", {}),
        statistics=statistics,
        tendency_statistics=tendencies,
        resolution=metadata.get("resolution"),
        recipe=recipe,
        extra_attrs=extra,
    )
