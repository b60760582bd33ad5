"""Graphs of several datasets: a data node set per dataset around one hidden mesh."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from squall.graphs.data_nodes import DataNodes
from squall.graphs.io import load_graph
from squall.graphs.multi_dataset import create_multi_dataset_graph, create_multi_dataset_graph_file

RECIPE = {"hidden": {"refinement": 4, "margin_km": 300.0}, "encoder": {"type": "knn", "k": 3}}


def _grids(storm_grid):
    lat, lon = storm_grid
    coarse = np.arange(len(lat)) % 3 == 0
    return {"coarse": DataNodes(lat[coarse], lon[coarse]), "fine": DataNodes(lat, lon)}


def test_each_dataset_has_its_nodes_and_edges(storm_grid):
    grids = _grids(storm_grid)
    graph = create_multi_dataset_graph(grids, RECIPE)
    assert set(graph.node_types) == {"coarse", "fine", "hidden"}
    for name, nodes in grids.items():
        np.testing.assert_allclose(graph[name].x.numpy(), nodes.latlon_rad, atol=1e-6)
        assert graph[name].area_weight.shape == (len(nodes.latitudes),)
        encoder, decoder = graph[name, "to", "hidden"], graph["hidden", "to", name]
        assert encoder.edge_index[0].max() < len(nodes.latitudes)
        # every grid point is decoded from 3 hidden nodes (decoder knn k=3)
        assert torch.bincount(decoder.edge_index[1]).tolist() == [3] * len(nodes.latitudes)
    assert ("hidden", "to", "hidden") in graph.edge_types


def test_graph_file_records_every_grid(storm_grid, tmp_path):
    """The file's coordinates hash names each dataset's grid, so training refuses a graph
    built for other grids or other dataset names."""
    grids = _grids(storm_grid)
    path = tmp_path / "coarse.npz"
    np.savez(path, latitudes=grids["coarse"].latitudes, longitudes=grids["coarse"].longitudes)
    fine = tmp_path / "fine.npz"
    np.savez(fine, latitudes=grids["fine"].latitudes, longitudes=grids["fine"].longitudes)
    out = create_multi_dataset_graph_file(RECIPE, {"coarse": path, "fine": fine}, tmp_path / "g.pt")
    expected = f"coarse={grids['coarse'].coordinates_hash};fine={grids['fine'].coordinates_hash}"
    _, info = load_graph(out, expected_coordinates_hash=expected)
    with pytest.raises(ValueError, match="coordinates hash coarse="):
        load_graph(out, expected_coordinates_hash=expected.replace("fine=", "fine2="))


def test_names_clashing_with_the_hidden_mesh_are_refused(storm_grid):
    grids = _grids(storm_grid)
    with pytest.raises(ValueError, match="clashes with the hidden node sets"):
        create_multi_dataset_graph({"hidden_2": grids["coarse"], "fine": grids["fine"]}, RECIPE)
