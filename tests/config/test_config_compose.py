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
# Templates on several datasets name a store and statistics per dataset instead.
MULTI_DATASET = {"downscaling": ["coarse", "fine"], "multi_dataset": ["surface", "upper"]}


def _required(template: str) -> list[str]:
    if template not in MULTI_DATASET:
        return REQUIRED
    per_dataset = [
        f"system.input.datasets.{name}.{key}=x"
        for name in MULTI_DATASET[template]
        for key in ("dataset", "statistics")
    ]
    return [o for o in REQUIRED if "dataset=" not in o and "statistics=" not in o] + per_dataset


def test_unknown_template_lists_the_available_ones():
    with pytest.raises(ConfigError, match="top-level configs there: .*config"):
        compose_config("no_such_template", [], CONFIG_DIR)


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_shipped_template_validates(template):
    config = load_config(template, _required(template), CONFIG_DIR)
    assert config.dataloader.training.start == "1996-01-05"


def test_overrides_reach_the_validated_config():
    config = load_config("config", [*REQUIRED, "model.hidden_channels=32"], CONFIG_DIR)
    assert config.model.hidden_channels == 32
