"""Every shipped template in configs/training/graph builds a usable graph on an O96 grid."""

from pathlib import Path

import numpy as np
import pytest
import torch

from squall.graphs.create import create_graph
from squall.graphs.data_nodes import DataNodes
from squall.graphs.grids import reduced_gaussian_grid
from squall.graphs.recipe import load_recipe

TEMPLATES = Path(__file__).parents[2] / "configs/training/graph"
MODEL_EDGES = [("data", "to", "hidden"), ("hidden", "to", "data")]


@pytest.fixture(scope="module")
def o96_with_cutout():
    lat, lon = reduced_gaussian_grid("o96")
    europe = (lat > 35) & (lat < 70) & ((lon < 30) | (lon > 350))
    return DataNodes(lat, lon, {"cutout_mask": europe})


def test_all_six_templates_exist():
    names = {path.stem for path in TEMPLATES.glob("*.yaml")}
    assert names == {
        "multi_scale",
        "limited_area",
        "stretched",
        "healpix",
        "hierarchical",
        "encoder_decoder_only",
        "multi_dataset",
        "limited_area_coarse",  # issue 13: the storm autoencoder's latent mesh
        "limited_area_fine",  # the ERA5 UK interpolator's mesh
        "stretched_box",  # a stretched mesh over a box of a regional grid
    }


def era5_uk_grid() -> tuple[np.ndarray, np.ndarray]:
    """The 0.25 deg grid of samples/era5-2mt-2019-03-uk.grib (58N-50N, 10W-2E)."""
    lat, lon = np.meshgrid(np.arange(58.0, 49.9, -0.25), np.arange(-10.0, 2.1, 0.25), indexing="ij")
    return lat.ravel(), lon.ravel()


@pytest.mark.parametrize("name", sorted(path.stem for path in TEMPLATES.glob("*.yaml")))
def test_template_builds(name, o96_with_cutout, storm_grid):
    recipe = load_recipe(TEMPLATES / f"{name}.yaml")
    # multi_dataset: a limited area too (tests/graphs/test_multi_dataset_graph.py builds it
    # with several data node sets)
    data = DataNodes(*storm_grid) if name in ("limited_area", "multi_dataset") else o96_with_cutout
    if name in ("limited_area_coarse", "stretched_box"):
        data = DataNodes(*storm_grid)
    if name == "limited_area_fine":
        data = DataNodes(*era5_uk_grid())
    graph = create_graph(data, recipe)
    for edge_type in MODEL_EDGES:
        store = graph[edge_type]
        assert store.edge_attr.shape == (store.num_edges, 3)
        assert torch.isfinite(store.edge_attr).all()
    assert torch.bincount(graph["hidden", "to", "data"].edge_index[1]).min() >= 1
    hidden = graph["hidden"].x.double().numpy()
    assert (np.diff(hidden[:, 0]) >= -1e-7).all()  # sorted by latitude
    has_processor = ("hidden", "to", "hidden") in graph.edge_types
    assert has_processor == (name != "encoder_decoder_only")
    if name == "stretched":
        # more nodes than the global level 4, far fewer than the global level 6
        assert 2562 < graph["hidden"].num_nodes < 40962 / 4
    if name == "hierarchical":
        assert graph["hidden_2"].num_nodes == 2562 and graph["hidden_3"].num_nodes == 642
        for edge_type in [("hidden", "to", "hidden_2"), ("hidden_3", "to", "hidden_2")]:
            assert graph[edge_type].num_edges > 0
    if name == "healpix":
        assert graph["hidden"].num_nodes == 12 * 4**5
