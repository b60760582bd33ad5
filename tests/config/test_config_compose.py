"""The config stage as a user meets it: clear errors, and every shipped template valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from squall.config.compose import ConfigError, compose_config, load_config

REPO = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO / "configs/training"
REQUIRED = [
    "system.input.dataset=ds.zarr",
    "system.input.graph=graph.pt",
    "system.input.statistics=stats.json",
    "system.output.root=out",
    "dataloader.training.start=1996-01-05",
    "dataloader.training.end=1996-01-16",
    "dataloader.validation.start=1996-01-17",
    "dataloader.validation.end=1996-01-18",
]
TEMPLATES = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def test_placeholder_error_names_the_key_and_how_to_set_it():
    with pytest.raises(
        ConfigError,
        match=r"'dataloader\.training\.start' must be set.*"
        r"dataloader\.training\.start=\.\.\.",
    ):
        load_config("config", [], CONFIG_DIR)


def test_typo_suggests_the_nearest_valid_key():
    with pytest.raises(ConfigError, match="did you mean 'model.hidden_channels'"):
        load_config("config", [*REQUIRED, "+model.hiden_channels=32"], CONFIG_DIR)


def test_bad_value_names_key_and_value():
    with pytest.raises(ConfigError, match=r"'training\.max_epochs' = 0"):
        load_config("config", [*REQUIRED, "training.max_epochs=0"], CONFIG_DIR)


def test_timestep_must_be_multiple_of_frequency():
    with pytest.raises(ConfigError, match="not a multiple of data.frequency"):
        load_config("config", [*REQUIRED, "data.timestep=9h"], CONFIG_DIR)


def test_unknown_template_lists_the_available_ones():
    with pytest.raises(ConfigError, match="top-level configs there: .*config"):
        compose_config("no_such_template", [], CONFIG_DIR)


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_shipped_template_validates(template):
    config = load_config(template, REQUIRED, CONFIG_DIR)
    assert config.dataloader.training.start == "1996-01-05"


def test_overrides_reach_the_validated_config():
    config = load_config("config", [*REQUIRED, "model.hidden_channels=32"], CONFIG_DIR)
    assert config.model.hidden_channels == 32
