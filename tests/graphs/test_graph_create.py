import numpy as np
import pytest
import torch

from squall.graphs.create import build_graph, create_graph
from squall.graphs.data_nodes import DataNodes
from squall.graphs.spherical import EARTH_RADIUS_KM, latlon_to_xyz

EDGE_TYPES = [("data", "to", "hidden"), ("hidden", "to", "hidden"), ("hidden", "to", "data")]


@pytest.fixture(scope="module")
def storm_graph(storm_grid):
    return build_graph(*storm_grid, mesh_refinement=4)


def test_storm_graph_node_sets(storm_graph, storm_grid):
    data, hidden = storm_graph["data"], storm_graph["hidden"]
    assert data.x.shape == (726, 2) and data.x.dtype == torch.float32
    np.testing.assert_allclose(data.x.numpy(), np.radians(np.stack(storm_grid, 1)), atol=1e-6)
    assert data.area_weight.shape == (726,) and data.area_weight.mean() == pytest.approx(1.0)
    assert hidden.x.dtype == torch.float32 and 2 < hidden.num_nodes < 2562
    assert set(storm_graph.edge_types) == set(EDGE_TYPES)


def test_storm_graph_hidden_nodes_stay_near_the_domain(storm_graph):
    data_xyz = latlon_to_xyz(*storm_graph["data"].x.double().numpy().T)
    hidden_xyz = latlon_to_xyz(*storm_graph["hidden"].x.double().numpy().T)
    cosine = np.clip(hidden_xyz @ data_xyz.T, -1, 1)
    nearest_km = np.arccos(cosine.max(axis=1)) * EARTH_RADIUS_KM
    assert nearest_km.max() <= 300.0 + 1e-3
    lat_deg = np.degrees(storm_graph["hidden"].x[:, 0].numpy())
    assert lat_deg.min() > 20 - 3 and lat_deg.max() < 60 + 3


def test_longitudes_in_0_360_give_the_same_graph(storm_graph, storm_grid):
    latitudes, longitudes = storm_grid
    shifted = build_graph(latitudes, longitudes + 360.0, mesh_refinement=4)
    torch.testing.assert_close(shifted["hidden"].x, storm_graph["hidden"].x)
    for edge_type in EDGE_TYPES:
        assert torch.equal(shifted[edge_type].edge_index, storm_graph[edge_type].edge_index)
        torch.testing.assert_close(shifted[edge_type].edge_attr, storm_graph[edge_type].edge_attr)


def test_storm_graph_every_node_is_reached(storm_graph):
    encoder = storm_graph["data", "to", "hidden"].edge_index
    decoder = storm_graph["hidden", "to", "data"].edge_index
    assert torch.bincount(encoder[1], minlength=storm_graph["hidden"].num_nodes).min() >= 1
    assert torch.bincount(decoder[1], minlength=726).tolist() == [3] * 726
    for edge_type in EDGE_TYPES:
        store = storm_graph[edge_type]
        assert (store.edge_index[1].diff() >= 0).all()  # sorted by target
        assert store.edge_attr.shape == (store.edge_index.shape[1], 3)
        assert store.edge_attr[:, 0].max() == pytest.approx(1.0)


def test_storm_graph_at_refinement_five_with_a_smaller_margin(storm_grid):
    graph = build_graph(*storm_grid, mesh_refinement=5, margin_km=150.0)
    encoder = graph["data", "to", "hidden"].edge_index
    assert torch.bincount(encoder[1], minlength=graph["hidden"].num_nodes).min() >= 1
    coarser = build_graph(*storm_grid, mesh_refinement=4)
    assert graph["hidden"].num_nodes > coarser["hidden"].num_nodes


def test_hidden_nodes_out_of_encoder_reach_raise_a_clear_error(storm_grid):
    # At refinement 5 the mesh (~220 km) is finer than the grid (up to 260 km): hidden nodes
    # 300 km outside the domain are beyond a 0.6 x spacing cut-off.
    with pytest.raises(ValueError, match="encoder.cutoff_factor") as error:
        build_graph(*storm_grid, mesh_refinement=5, margin_km=300.0, encoder_cutoff_factor=0.6)
    assert "at least 1.1" in str(error.value) and "margin_km" in str(error.value)


def test_build_graph_rejects_swapped_coordinates(storm_grid):
    latitudes, longitudes = storm_grid
    with pytest.raises(ValueError, match="swapped"):
        build_graph(longitudes, latitudes)


def test_recipe_errors_name_the_key_and_the_nearest_valid_one(storm_grid):
    data = DataNodes(*storm_grid)
    with pytest.raises(ValueError, match="'hidden.refinment'.*Did you mean 'refinement'"):
        create_graph(data, {"hidden": {"refinment": 4}})
    with pytest.raises(ValueError, match="decoder.k=0"):
        create_graph(data, {"decoder": {"type": "knn", "k": 0}})
    graph = create_graph(
        data, {"hidden": {"refinement": 4, "margin_km": 300.0}, "decoder": {"type": "knn", "k": 4}}
    )
    assert graph["hidden", "to", "data"].edge_index.shape[1] == 4 * 726


def test_masks_restrict_edges_to_the_masked_nodes(storm_grid):
    latitudes, longitudes = storm_grid
    north = latitudes >= 40.0
    data = DataNodes(latitudes, longitudes, {"north": north})
    recipe = {
        "hidden": {"refinement": 4, "margin_km": 300.0},
        "encoder": {"type": "cutoff", "cutoff_factor": 1.2},
        "decoder": {"type": "knn", "k": 3, "target_mask": "north"},
    }
    graph = create_graph(data, recipe)
    decoder = graph["hidden", "to", "data"].edge_index
    assert set(decoder[1].unique().tolist()) == set(np.nonzero(north)[0].tolist())
    assert torch.equal(graph["data"].north, torch.from_numpy(north))
    with pytest.raises(ValueError, match="mask 'south' is not an attribute"):
        create_graph(data, {**recipe, "decoder": {"type": "knn", "k": 3, "target_mask": "south"}})
