import numpy as np
import pytest
import torch

from squall.graphs.attributes import area_weights, edge_attributes
from squall.graphs.edges import knn_edges
from squall.graphs.nodes import icosahedral_nodes
from squall.graphs.spherical import latlon_to_xyz


def test_edge_attributes_length_normalised_and_direction_unit():
    lat, lon, _ = icosahedral_nodes(2)
    nodes = np.stack([lat, lon], axis=1)
    xyz = latlon_to_xyz(lat, lon)
    edge_index = knn_edges(xyz, xyz[::3], k=5)
    attributes = edge_attributes(nodes, nodes[::3], edge_index)
    assert attributes.shape == (edge_index.shape[1], 3) and attributes.dtype == torch.float32
    length, direction = attributes[:, 0], attributes[:, 1:]
    assert length.min() >= 0 and length.max() == pytest.approx(1.0)
    # The nearest neighbour of each target is itself: zero length and (0, 0) direction.
    self_loop = length == 0
    assert self_loop.sum() == len(nodes[::3])
    assert torch.all(direction[self_loop] == 0)
    torch.testing.assert_close(direction[~self_loop].norm(dim=1), torch.ones((~self_loop).sum()))


def test_direction_points_from_target_to_source_in_east_north_frame():
    target = np.radians([[40.0, -100.0]])
    sources = np.radians([[45.0, -100.0], [40.0, -95.0], [35.0, -100.0], [0.0, -100.0]])
    edge_index = torch.tensor([[0, 1, 2, 3], [0, 0, 0, 0]])
    attributes = edge_attributes(sources, target, edge_index)
    direction = attributes[:, 1:].numpy()
    np.testing.assert_allclose(direction[0], [0.0, 1.0], atol=1e-6)  # due north
    assert direction[1, 0] > 0.99  # due east (a great circle bends north a little)
    np.testing.assert_allclose(direction[2], [0.0, -1.0], atol=1e-6)  # due south
    # Lengths relative to the longest edge (40 degrees due south): 5 / 40 for the first.
    assert attributes[0, 0].item() == pytest.approx(5 / 40, rel=1e-5)
    assert attributes[3, 0].item() == pytest.approx(1.0)


def test_edge_attributes_rejects_degrees_shaped_wrongly():
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        edge_attributes(np.zeros((3, 3)), np.zeros((2, 2)), torch.zeros((2, 1), dtype=torch.long))


def test_area_weights_follow_cos_latitude_with_mean_one():
    lat = np.radians(np.array([0.0, 30.0, 60.0, 89.0]))
    weights = area_weights(lat)
    assert weights.dtype == torch.float32
    assert weights.mean().item() == pytest.approx(1.0)
    assert weights[0] / weights[2] == pytest.approx(2.0)  # cos 0 / cos 60
    assert (weights.diff() < 0).all()


def test_voronoi_areas_match_scipy_spherical_voronoi():
    from scipy.spatial import SphericalVoronoi

    from squall.graphs.attributes import spherical_voronoi_areas
    from squall.graphs.spherical import xyz_to_latlon

    points = np.random.default_rng(3).normal(size=(3000, 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    expected = SphericalVoronoi(points).calculate_areas()
    areas = spherical_voronoi_areas(*xyz_to_latlon(points))
    np.testing.assert_allclose(areas, expected, rtol=1e-8)


def test_voronoi_areas_refuse_points_on_one_great_circle():
    from squall.graphs.attributes import spherical_voronoi_areas

    with pytest.raises(ValueError, match="cos-latitude"):
        spherical_voronoi_areas(np.zeros(10), np.linspace(0, 6, 10))


@pytest.mark.parametrize("norm", ["unit-max", "unit-sum", "unit-mean", "unit-std"])
def test_normalisations(norm):
    from squall.graphs.attributes import normalise

    values = np.array([1.0, 2.0, 3.0, 6.0])
    scaled = normalise(values, norm)
    measure = {"unit-max": np.max, "unit-sum": np.sum, "unit-mean": np.mean, "unit-std": np.std}
    assert measure[norm](scaled) == pytest.approx(1.0)
    np.testing.assert_allclose(scaled / scaled[0], values)  # a scaling only
