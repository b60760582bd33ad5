import numpy as np
import pytest

from squall.graphs.grids import gaussian_latitudes, healpix_grid, reduced_gaussian_grid


@pytest.mark.parametrize(("name", "count"), [("o48", 10_944), ("o96", 40_320), ("n320", 542_080)])
def test_reduced_gaussian_grid_sizes(name, count):
    lat, lon = reduced_gaussian_grid(name)
    assert len(lat) == len(lon) == count
    assert 0 <= lon.min() and lon.max() < 360
    assert (np.diff(lat) <= 0).all()  # rows north to south


def test_octahedral_rows_grow_by_four_from_twenty():
    lat, _ = reduced_gaussian_grid("o96")
    _, counts = np.unique(-lat, return_counts=True)  # rows north to south
    np.testing.assert_array_equal(counts[:3], [20, 24, 28])
    np.testing.assert_array_equal(counts, counts[::-1])
    assert counts.max() == 20 + 4 * 95 and len(counts) == 192


def test_gaussian_latitudes_are_the_gauss_legendre_nodes():
    nodes, _ = np.polynomial.legendre.leggauss(96)
    expected = np.sort(np.degrees(np.arcsin(nodes)))[::-1]
    np.testing.assert_allclose(gaussian_latitudes(48), expected, atol=1e-10)


def test_unknown_grids_are_refused_with_a_hint():
    with pytest.raises(ValueError, match="o<N>"):
        reduced_gaussian_grid("f96")
    with pytest.raises(ValueError, match="no classic reduced Gaussian grid N77"):
        reduced_gaussian_grid("n77")


def test_healpix_has_12_times_4_to_the_r_equal_area_pixels():
    lat, lon = healpix_grid(3)
    assert len(lat) == 12 * 4**3
    # Equal areas: the mean of sin(latitude) over the pixels is 0 and its spread is uniform.
    assert abs(np.sin(np.radians(lat)).mean()) < 1e-12
    assert len(np.unique(np.round(np.stack([lat, lon], 1), 9), axis=0)) == len(lat)
