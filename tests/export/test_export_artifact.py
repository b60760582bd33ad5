"""The exported model: pickle-free, self-contained, loadable with no training code."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import zipfile

import pytest
import torch
from tiny_graph import tiny_graph

from squall.export.artifact import (
    load_artifact,
    read_graph,
    read_metadata,
    summary,
    write_artifact,
    zip_artifact,
)
from squall.models.interface import ForecastModel

SPEC = {
    "variables": ["msl", "t_surface"],
    "forcing": [],
    "diagnostic": [],
    "computed_forcings": ["cos_local_time"],
    "input_steps": 2,
    "timestep_seconds": 21600,
    "network": {"hidden_channels": 8, "processor_layers": 1},
}
STATS = {"mean": [101000.0, 280.0], "stdev": [900.0, 15.0], "tendency_stdev": [300.0, 3.0]}


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    graph = tiny_graph(num_data=40, num_hidden=12)
    model = ForecastModel(graph, SPEC, STATS)
    torch.nn.init.normal_(list(model.network.output_mlp.modules())[-1].weight)
    path = write_artifact(
        model,
        graph,
        STATS,
        tmp_path_factory.mktemp("export") / "m.squall",
        provenance={"lineage": {"dataset": "abc"}},
        coordinates_hash="h1",
    )
    x = torch.randn(1, 2, 1, 40, 2) * torch.tensor([900.0, 15.0]) + torch.tensor([101000.0, 280.0])
    expected = model.rollout(x, torch.tensor([820454400]), steps=2)
    return path, x, expected


def test_artifact_holds_two_plain_files(artifact):
    path, _, _ = artifact
    assert sorted(p.name for p in path.iterdir()) == ["metadata.json", "weights.safetensors"]
    metadata = json.loads((path / "metadata.json").read_text())
    assert metadata["graph"]["coordinates_hash"] == "h1"
    assert metadata["variables"]["output"] == ["msl", "t_surface"]
    assert "torch" in metadata["versions"]
    assert "h1" in summary(path)


def test_loads_without_pickles_or_training_code(artifact, tmp_path):
    path, x, expected = artifact
    torch.save({"x": x, "expected": expected}, tmp_path / "io.pt")
    script = textwrap.dedent(f"""
        import sys, torch
        sys.modules["squall.training"] = None  # any import of training code fails
        sys.modules["pytorch_lightning"] = None
        io = torch.load({str(tmp_path / "io.pt")!r}, weights_only=True)
        def refuse(*args, **kwargs):
            raise RuntimeError("torch.load called while loading the model")
        torch.load = refuse
        from squall.export.artifact import load_artifact
        model, _ = load_artifact({str(path)!r})
        out = model.rollout(io["x"], torch.tensor([820454400]), steps=2)
        torch.testing.assert_close(out, io["expected"])
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "ok"


def test_zip_round_trip(artifact):
    path, x, expected = artifact
    zipped = zip_artifact(path)
    assert zipfile.ZipFile(zipped).namelist() == ["weights.safetensors", "metadata.json"]
    model, metadata = load_artifact(zipped)
    torch.testing.assert_close(model.rollout(x, torch.tensor([820454400]), steps=2), expected)
    assert metadata == read_metadata(path)


def test_not_a_model_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="squall export"):
        read_metadata(tmp_path)
    (tmp_path / "metadata.json").write_text(json.dumps({"format": "other/9"}))
    with pytest.raises(ValueError, match="expected squall-model/1"):
        read_metadata(tmp_path)


def test_a_failed_rewrite_leaves_the_old_artifact_intact(artifact, monkeypatch):
    path, x, expected = artifact
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    model, _ = load_artifact(path)

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("squall.export.artifact.save_file", fail)
    with pytest.raises(OSError, match="disk full"):
        write_artifact(model, read_graph(path), STATS, path, provenance={}, coordinates_hash="h2")
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    assert [p.name for p in path.parent.iterdir() if ".tmp-" in p.name] == []
