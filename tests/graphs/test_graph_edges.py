import numpy as np
import pytest
import torch

from squall.graphs.edges import (
    cutoff_edges,
    knn_edges,
    multiscale_mesh_edges,
    reference_distance,
)
from squall.graphs.nodes import icosahedral_level_edges, icosahedral_nodes
from squall.graphs.spherical import latlon_to_xyz


def random_sphere_points(count: int, seed: int) -> np.ndarray:
    points = np.random.default_rng(seed).normal(size=(count, 3))
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def brute_force_distances(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(targets, sources) straight-line distances."""
    return np.linalg.norm(target[:, None, :] - source[None, :, :], axis=-1)


def assert_sorted_by_target(edge_index: torch.Tensor) -> None:
    assert edge_index.dtype == torch.long and edge_index.shape[0] == 2
    assert (edge_index[1].diff() >= 0).all()


def test_knn_gives_exactly_k_nearest_sources_per_target():
    source, target = random_sphere_points(300, 0), random_sphere_points(50, 1)
    edge_index = knn_edges(source, target, k=4)
    assert_sorted_by_target(edge_index)
    assert torch.bincount(edge_index[1], minlength=50).tolist() == [4] * 50
    nearest = np.argsort(brute_force_distances(source, target), axis=1)[:, :4]
    for node in range(50):
        found = edge_index[0, edge_index[1] == node].numpy()
        assert set(found) == set(nearest[node])


def test_knn_refuses_more_neighbours_than_sources():
    with pytest.raises(ValueError, match="only 3 source nodes"):
        knn_edges(random_sphere_points(3, 0), random_sphere_points(5, 1), k=4)


def test_cutoff_edges_respect_radius_and_keep_all_within_it():
    source, target = random_sphere_points(2000, 2), random_sphere_points(100, 3)
    factor = 0.8
    edge_index = cutoff_edges(source, target, cutoff_factor=factor, max_neighbours=1000)
    assert_sorted_by_target(edge_index)
    radius = factor * reference_distance(target)
    distance = brute_force_distances(source, target)
    expected = {(s, t) for t, s in zip(*np.nonzero(distance <= radius), strict=True)}
    assert set(map(tuple, edge_index.T.tolist())) == expected


def test_cutoff_edges_cap_keeps_the_closest_sources():
    source, target = random_sphere_points(2000, 4), random_sphere_points(100, 5)
    edge_index = cutoff_edges(source, target, cutoff_factor=1.5, max_neighbours=5)
    counts = torch.bincount(edge_index[1], minlength=100)
    assert counts.max() == 5 and counts.min() >= 1
    distance = brute_force_distances(source, target)
    for node in range(100):
        kept = edge_index[0, edge_index[1] == node].numpy()
        assert set(kept) == set(np.argsort(distance[node])[: len(kept)])


def test_reference_distance_is_the_largest_nearest_neighbour_distance():
    points = latlon_to_xyz(np.zeros(3), np.radians([0.0, 1.0, 4.0]))
    # Nearest neighbours: 0<->1 at 1 degree, 2->1 at 3 degrees: the sparsest spacing is 3.
    assert reference_distance(points) == pytest.approx(2 * np.sin(np.radians(3.0) / 2))


def test_cutoff_edges_error_says_to_increase_the_factor():
    target = latlon_to_xyz(np.zeros(2), np.radians([0.0, 1.0]))
    source = latlon_to_xyz(np.zeros(2), np.radians([0.1, 90.0]))  # none near target 1
    with pytest.raises(ValueError, match="1 of 2 target nodes.*increase the cutoff factor"):
        cutoff_edges(source, target, cutoff_factor=0.6)


def test_multiscale_edges_are_symmetric_unique_and_include_level_one():
    levels = icosahedral_level_edges(3)
    edge_index = multiscale_mesh_edges(levels)
    assert_sorted_by_target(edge_index)
    pairs = set(map(tuple, edge_index.T.tolist()))
    assert len(pairs) == edge_index.shape[1]  # no duplicates
    assert all((t, s) in pairs for s, t in pairs)  # both directions
    assert all(s != t for s, t in pairs)
    assert all((int(a), int(b)) in pairs for a, b in levels[0])  # long level-1 edges present
    # Levels share no edge on an icosphere, so every level adds its own edges.
    assert len(pairs) == 2 * sum(len(level) for level in levels)


def test_multiscale_edges_restricted_to_kept_nodes_are_reindexed():
    lat, lon, _ = icosahedral_nodes(3)
    levels = icosahedral_level_edges(3)
    keep = lat > np.radians(30.0)
    edge_index = multiscale_mesh_edges(levels, keep)
    kept_index = np.nonzero(keep)[0]
    assert edge_index.max() < keep.sum()
    # Map back to the full node set: exactly the full-graph edges with both ends kept.
    full = multiscale_mesh_edges(levels).numpy()
    inside = full[:, keep[full[0]] & keep[full[1]]]
    restored = kept_index[edge_index.numpy()]
    assert set(map(tuple, restored.T.tolist())) == set(map(tuple, inside.T.tolist()))
