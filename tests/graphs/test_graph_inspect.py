from pathlib import Path

import numpy as np
import pytest
import torch

from squall.cli import main
from squall.graphs.create import build_graph
from squall.graphs.inspect import edge_lengths_km, inspect_graph
from squall.graphs.plot import plot_graph

REPO = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def storm_graph(storm_grid):
    return build_graph(*storm_grid, mesh_refinement=4)


def test_inspect_reports_counts_degrees_and_unconnected_nodes(storm_graph):
    graph = storm_graph.clone()
    # Drop every decoder edge into data node 0: the report must show it as unconnected there.
    decoder = graph["hidden", "to", "data"].edge_index
    graph["hidden", "to", "data"].edge_index = decoder[:, decoder[1] != 0]
    report = inspect_graph(graph, bins=5)
    assert "data                726" in report.replace(",", "")
    assert f"edges hidden -to-> data: {decoder.shape[1] - 3:,}" in report
    assert "in-degree  of data: min 0, mean" in report and "1 nodes without edges" in report
    assert report.count(" km ") == 5 * 3  # a 5-bin histogram per edge set


def test_edge_lengths_are_great_circle_km(storm_graph):
    lengths = edge_lengths_km(storm_graph, ("hidden", "to", "data"))
    assert lengths.shape == (storm_graph["hidden", "to", "data"].num_edges,)
    # Decoder edges join a grid point to its nearest level-4 mesh nodes (about 440 km apart).
    assert 0 <= lengths.min() and lengths.max() < 600


def test_plot_writes_a_png(storm_graph, tmp_path):
    path = plot_graph(storm_graph, tmp_path / "graph.png", max_edges=500)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["graph.png"]


def test_cli_create_inspect_plot(tmp_path, capsys):
    lat, lon = np.meshgrid(np.arange(30, 50.1, 2.0), np.arange(-100, -79.9, 2.0), indexing="ij")
    np.savez(tmp_path / "grid.npz", latitudes=lat.ravel(), longitudes=lon.ravel())
    recipe = str(REPO / "configs/training/graph/limited_area.yaml")
    out = tmp_path / "graph.pt"
    assert main(["graph", "create", recipe, "--dataset", str(tmp_path / "grid.npz"), str(out)]) == 0
    payload = torch.load(out, weights_only=True)
    assert payload["config"]["hidden"]["margin_km"] == 300.0
    capsys.readouterr()
    assert main(["graph", "inspect", str(out)]) == 0
    report = capsys.readouterr().out
    assert "edges data -to-> hidden" in report and "coordinates hash" in report
    assert main(["graph", "plot", str(out)]) == 0
    assert (tmp_path / "graph.png").is_file()
    missing = str(tmp_path / "no.npz")
    assert main(["graph", "create", recipe, "--dataset", missing, str(out)]) == 2
    assert "no dataset or .npz file" in capsys.readouterr().err


@pytest.mark.slow
def test_o1280_with_hidden_level_7():
    from squall.graphs.create import create_graph
    from squall.graphs.data_nodes import load_data_nodes

    recipe = {
        "data": {"area_weights": {"method": "spherical-voronoi", "norm": "unit-max"}},
        "hidden": {"refinement": 7},
    }
    graph = create_graph(load_data_nodes("o1280"), recipe)
    assert graph["data"].num_nodes == 6_599_680 and graph["hidden"].num_nodes == 163_842
    assert graph["hidden", "to", "data"].num_edges == 3 * 6_599_680
    assert torch.bincount(graph["data", "to", "hidden"].edge_index[1]).min() >= 1
