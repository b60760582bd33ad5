import os

import numpy as np
import pytest
import torch

from squall.data.coordinates import coordinates_hash
from squall.graphs.create import build_graph
from squall.graphs.io import GRAPH_FORMAT, load_graph, save_graph

CONFIG = {"mesh_refinement": 4, "margin_km": 300.0, "encoder_cutoff_factor": 0.6}


@pytest.fixture(scope="module")
def graph_and_hash(storm_grid):
    return build_graph(*storm_grid, mesh_refinement=4), coordinates_hash(*storm_grid)


def test_round_trip_keeps_every_tensor(tmp_path, graph_and_hash):
    graph, grid_hash = graph_and_hash
    path = save_graph(graph, tmp_path / "graph.pt", coordinates_hash=grid_hash, config=CONFIG)
    loaded, info = load_graph(path, expected_coordinates_hash=grid_hash)
    assert info["coordinates_hash"] == grid_hash and info["config"] == CONFIG
    assert loaded.node_types == graph.node_types and loaded.edge_types == graph.edge_types
    for store_type in [*graph.node_types, *graph.edge_types]:
        original, restored = graph[store_type].to_dict(), loaded[store_type].to_dict()
        assert original.keys() == restored.keys()
        for key, value in original.items():
            torch.testing.assert_close(restored[key], value, rtol=0, atol=0)


def test_file_loads_with_weights_only(tmp_path, graph_and_hash):
    graph, grid_hash = graph_and_hash
    path = save_graph(graph, tmp_path / "graph.pt", coordinates_hash=grid_hash, config=CONFIG)
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == GRAPH_FORMAT
    assert ("data", "to", "hidden") in payload["graph"]


def test_graph_for_another_grid_is_refused(tmp_path, graph_and_hash):
    graph, grid_hash = graph_and_hash
    path = save_graph(graph, tmp_path / "graph.pt", coordinates_hash=grid_hash, config=CONFIG)
    with pytest.raises(ValueError) as error:
        load_graph(path, expected_coordinates_hash="0123456789abcdef")
    message = str(error.value)
    assert grid_hash in message and "0123456789abcdef" in message
    assert str(path) in message and "squall graph create" in message


def test_numpy_config_values_are_stored_as_plain_numbers(tmp_path, graph_and_hash):
    graph, grid_hash = graph_and_hash
    config = {**CONFIG, "margin_km": np.float64(300.0), "nested": {"k": np.int64(3)}}
    path = save_graph(graph, tmp_path / "graph.pt", coordinates_hash=grid_hash, config=config)
    _, info = load_graph(path)
    assert info["config"] == {**CONFIG, "nested": {"k": 3}}
    assert type(info["config"]["nested"]["k"]) is int


def test_save_is_atomic(tmp_path, graph_and_hash, monkeypatch):
    graph, grid_hash = graph_and_hash
    path = save_graph(graph, tmp_path / "graph.pt", coordinates_hash=grid_hash, config=CONFIG)
    assert os.listdir(tmp_path) == ["graph.pt"]  # no temporary file left behind
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_graph(graph, path, coordinates_hash="other", config=CONFIG)
    assert os.listdir(tmp_path) == ["graph.pt"] and path.read_bytes() == before


def test_missing_or_foreign_files_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="squall graph create"):
        load_graph(tmp_path / "absent.pt")
    torch.save({"weights": torch.ones(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a squall-graph/1 graph file"):
        load_graph(tmp_path / "other.pt")
