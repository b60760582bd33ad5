import numpy as np
import pytest
import trimesh

from squall.graphs.nodes import (
    icosahedral_coarse_mask,
    icosahedral_level_edges,
    icosahedral_nodes,
    restrict_to_area,
)
from squall.graphs.spherical import EARTH_RADIUS_KM, latlon_to_xyz, xyz_to_latlon


def great_circle_km(lat1, lon1, lat2, lon2):
    """Haversine distance, independent of the code under test."""
    half_dlat, half_dlon = (lat2 - lat1) / 2, (lon2 - lon1) / 2
    a = np.sin(half_dlat) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin(half_dlon) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(a))


@pytest.mark.parametrize("refinement", [0, 1, 2, 3, 4])
def test_icosahedral_node_and_edge_counts(refinement):
    lat, lon, edges = icosahedral_nodes(refinement)
    assert len(lat) == len(lon) == 10 * 4**refinement + 2
    assert edges.shape == (30 * 4**refinement, 2)  # E = 3F/2, F = 20 * 4**r
    assert (edges[:, 0] < edges[:, 1]).all()
    assert len(np.unique(edges, axis=0)) == len(edges)


def test_nodes_sorted_by_latitude_then_longitude():
    lat, lon, _ = icosahedral_nodes(3)
    assert (np.diff(lat) >= -1e-9).all()
    same_ring = np.abs(np.diff(lat)) < 1e-9
    assert same_ring.any()  # rings of equal latitude exist: the longitude tie-break matters
    assert (np.diff(lon)[same_ring] > 0).all()


def test_sorted_edges_connect_the_same_points_as_trimesh():
    lat, lon, edges = icosahedral_nodes(2)
    mesh = trimesh.creation.icosphere(subdivisions=2)
    ours = latlon_to_xyz(lat, lon)[edges].round(8)
    theirs = np.asarray(mesh.vertices)[np.asarray(mesh.edges_unique)].round(8)

    def as_set(pairs):
        return {tuple(sorted((tuple(a), tuple(b)))) for a, b in pairs}

    assert as_set(ours) == as_set(theirs)


def test_trimesh_coarse_levels_are_a_prefix_of_fine_levels():
    finest = np.asarray(trimesh.creation.icosphere(subdivisions=4).vertices)
    for level in range(4):
        coarse = np.asarray(trimesh.creation.icosphere(subdivisions=level).vertices)
        np.testing.assert_allclose(coarse, finest[: len(coarse)], atol=1e-12)


def test_level_edges_are_on_the_finest_node_set():
    levels = icosahedral_level_edges(3)
    lat, lon, finest_edges = icosahedral_nodes(3)
    assert [len(e) for e in levels] == [30 * 4**r for r in (1, 2, 3)]
    np.testing.assert_array_equal(np.unique(levels[-1], axis=0), np.unique(finest_edges, axis=0))
    # Level-1 edges are long: about 32 degrees of arc, versus about 8 at level 3.
    xyz = latlon_to_xyz(lat, lon)
    cosine = (xyz[levels[0][:, 0]] * xyz[levels[0][:, 1]]).sum(axis=1)
    arc = np.degrees(np.arccos(np.clip(cosine, -1, 1)))
    assert arc.min() > 25


def test_latlon_xyz_round_trip():
    rng = np.random.default_rng(0)
    lat = rng.uniform(-np.pi / 2, np.pi / 2, 100)
    lon = rng.uniform(-np.pi, np.pi, 100)
    xyz = latlon_to_xyz(lat, lon)
    np.testing.assert_allclose(np.linalg.norm(xyz, axis=1), 1.0)
    lat_back, lon_back = xyz_to_latlon(xyz)
    np.testing.assert_allclose(lat_back, lat, atol=1e-12)
    np.testing.assert_allclose(lon_back, lon, atol=1e-12)


def test_restrict_to_area_matches_great_circle_distance():
    rng = np.random.default_rng(1)
    lat = np.arcsin(rng.uniform(-1, 1, 2000))
    lon = rng.uniform(-np.pi, np.pi, 2000)
    ref_lat, ref_lon = np.radians([45.0, 10.0]), np.radians([-100.0, 20.0])
    mask = restrict_to_area(lat, lon, ref_lat, ref_lon, margin_km=1500.0)
    distance = np.minimum(
        great_circle_km(lat, lon, ref_lat[0], ref_lon[0]),
        great_circle_km(lat, lon, ref_lat[1], ref_lon[1]),
    )
    np.testing.assert_array_equal(mask, distance <= 1500.0)
    assert 0 < mask.sum() < len(mask)


def test_restrict_to_area_rejects_negative_margin():
    with pytest.raises(ValueError, match="margin_km"):
        restrict_to_area(np.zeros(1), np.zeros(1), np.zeros(1), np.zeros(1), margin_km=-1.0)


def test_level_list_may_include_level_zero_and_rejects_finer_levels():
    levels = icosahedral_level_edges(3, [0, 2])
    assert [len(e) for e in levels] == [30, 30 * 16]
    with pytest.raises(ValueError, match="finer than the mesh refinement 3"):
        icosahedral_level_edges(3, [4])


def test_coarse_mask_marks_the_coarse_vertices_in_sorted_order():
    mask = icosahedral_coarse_mask(3, 1)
    assert mask.sum() == 42
    lat, lon, _ = icosahedral_nodes(3)
    coarse_lat, coarse_lon, _ = icosahedral_nodes(1)
    np.testing.assert_allclose(lat[mask], coarse_lat, atol=1e-12)
    np.testing.assert_allclose(lon[mask], coarse_lon, atol=1e-12)
