"""The O96 graph with hidden level 5 must match the published edge counts exactly."""

import numpy as np
import pytest
import torch

from squall.graphs.attributes import spherical_voronoi_areas
from squall.graphs.create import create_graph
from squall.graphs.data_nodes import load_data_nodes
from squall.graphs.edges import multiscale_mesh_edges
from squall.graphs.nodes import icosahedral_level_edges

O96_RECIPE = {
    "data": {"area_weights": {"method": "spherical-voronoi", "norm": "none"}},
    "hidden": {"type": "icosahedral", "refinement": 5},
    "encoder": {"type": "cutoff", "cutoff_factor": 0.6},
    "processor": {"type": "multiscale", "levels": [0, 1, 2, 3, 4, 5]},
    "decoder": {"type": "knn", "k": 3},
}


@pytest.fixture(scope="module")
def o96_graph():
    return create_graph(load_data_nodes("o96"), O96_RECIPE)


def test_o96_counts(o96_graph):
    assert o96_graph["data"].num_nodes == 40_320 and o96_graph["hidden"].num_nodes == 10_242
    assert o96_graph["data", "to", "hidden"].num_edges == 62_980
    assert o96_graph["hidden", "to", "hidden"].num_edges == 81_900
    assert o96_graph["hidden", "to", "data"].num_edges == 120_960


def test_processor_levels_one_to_five():
    # levels: null means 1..refinement, the anemoi default
    assert multiscale_mesh_edges(icosahedral_level_edges(5)).shape[1] == 81_840


def test_multiscale_edges_are_symmetric(o96_graph):
    edge_index = o96_graph["hidden", "to", "hidden"].edge_index
    forward = set(map(tuple, edge_index.T.tolist()))
    assert forward == set(map(tuple, edge_index.flip(0).T.tolist()))


def test_every_data_node_is_reached_by_encoder_and_decoder(o96_graph):
    encoder = o96_graph["data", "to", "hidden"].edge_index
    decoder = o96_graph["hidden", "to", "data"].edge_index
    assert torch.bincount(encoder[0], minlength=40_320).min() >= 1
    assert torch.bincount(decoder[1], minlength=40_320).min() == 3
    assert torch.bincount(encoder[1], minlength=10_242).min() >= 1


def test_area_weights_sum_to_4_pi(o96_graph):
    assert o96_graph["data"].area_weight.double().sum().item() == pytest.approx(4 * np.pi)


def test_voronoi_areas_with_poles_and_duplicate_points():
    # A 2-degree lat-lon grid that includes both poles: 180 copies of each pole.
    lat, lon = np.meshgrid(np.arange(-90, 90.1, 2.0), np.arange(0, 360, 2.0), indexing="ij")
    areas = spherical_voronoi_areas(np.radians(lat.ravel()), np.radians(lon.ravel()))
    assert areas.sum() == pytest.approx(4 * np.pi)
    assert np.allclose(areas.reshape(lat.shape)[0], areas[0])  # pole copies share equally
    equator = areas.reshape(lat.shape)[45]
    # A cell on the equator: 2 x 2 degrees, about (2 pi / 180)^2 steradians.
    assert equator.mean() == pytest.approx((2 * np.pi / 180) ** 2, rel=1e-3)
