"""config generate / dump / schema, and a user's folder first on the search path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from storm_sample import TEST, pipeline_overrides

from squall.cli import main
from squall.config.compose import load_config
from squall.config.tools import dump, generate, json_schema

REQUIRED = pipeline_overrides(
    {"dataset": "ds.zarr", "graph": "g.pt", "statistics": "s.json"}, Path("out")
)


def test_generated_copy_shadows_the_templates(tmp_path):
    mine = generate(tmp_path / "mine")
    training = mine / "training" / "default.yaml"
    settings = yaml.safe_load(training.read_text())
    settings["max_epochs"] = 7
    training.write_text(yaml.safe_dump(settings))
    assert load_config("config", REQUIRED, mine).training.max_epochs == 7


def test_a_user_folder_needs_only_what_it_changes(tmp_path):
    folder = tmp_path / "only_mine"
    folder.mkdir()
    (folder / "mine.yaml").write_text(
        "defaults:\n  - config\n  - _self_\nmodel:\n  hidden_channels: 12\n"
    )
    config = load_config("mine", REQUIRED, folder)
    assert config.model.hidden_channels == 12
    assert config.training.max_epochs == load_config("config", REQUIRED).training.max_epochs


def test_generate_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="--force"):
        generate(tmp_path / "x")


def test_dump_is_the_resolved_yaml():
    resolved = yaml.safe_load(dump("debug", REQUIRED, "configs/training"))
    assert resolved["model"]["hidden_channels"] == 16
    assert resolved["dataloader"]["test"] == {"start": TEST[0], "end": TEST[1]}


def test_schema_is_json_for_editors():
    schema = json.loads(json_schema())
    assert "training" in schema["properties"] and "$defs" in schema


def test_cli_exits_2_with_a_message_and_no_traceback(capsys):
    assert main(["config", "validate", "--out", "unused.yaml", "+model.hiden_channels=3"]) == 2
    err = capsys.readouterr().err
    # The typo and the unset placeholders, all in one report.
    assert "did you mean 'model.hidden_channels'" in err and "Traceback" not in err
    assert "system.input.dataset: must be set" in err
