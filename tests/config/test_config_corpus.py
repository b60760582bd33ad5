"""A corpus of bad configs: each names the exact key at fault, and nothing heavy starts."""

from __future__ import annotations

import pytest
from storm_sample import REPO

import squall.training.preflight as preflight
from squall.config.compose import ConfigError
from squall.training.preflight import validate_to_file

CONFIG_DIR = REPO / "configs/training"
GOOD = {
    "system.input.dataset": "ds.zarr",
    "system.input.graph": "graph.pt",
    "system.input.statistics": "stats.json",
    "system.output.root": "out",
    "dataloader.training.start": "1996-01-05T00",
    "dataloader.training.end": "1996-01-16T18",
    "dataloader.validation.start": "1996-01-17T00",
    "dataloader.validation.end": "1996-01-18T18",
    "dataloader.test.start": "1996-01-19T00",
    "dataloader.test.end": "1996-01-20T18",
}

GE0, GE1 = "greater than or equal to 0", "greater than or equal to 1"

# (overrides changed from GOOD, key the message must name, a fragment of the advice)
CORPUS = [
    ({"+traning.max_epochs": "3"}, "traning", "did you mean 'training'"),
    (
        {"+model.hiden_channels": "32"},
        "model.hiden_channels",
        "did you mean 'model.hidden_channels'",
    ),
    ({"+training.max_epoch": "3"}, "training.max_epoch", "did you mean 'training.max_epochs'"),
    ({"+training.optimizer.learning_rate": "1"}, "training.optimizer.learning_rate", "valid keys"),
    ({"+dataloader.batchsize.training": "2"}, "dataloader.batchsize", "did you mean"),
    ({"+system.hardware.gpus": "2"}, "system.hardware.gpus", "valid keys"),
    ({"training.max_epochs": "abc"}, "training.max_epochs", "valid integer"),
    ({"training.max_epochs": "0"}, "training.max_epochs", GE1),
    ({"training.optimizer.lr": "-1"}, "training.optimizer.lr", "greater than 0"),
    (
        {"training.optimizer.weight_decay": "-0.1"},
        "training.optimizer.weight_decay",
        "greater than or equal to 0",
    ),
    ({"training.optimizer.betas": "[0.9]"}, "training.optimizer.betas", "too few items"),
    (
        {"training.lr_schedule.warmup_steps": "-5"},
        "training.lr_schedule.warmup_steps",
        "greater than or equal to 0",
    ),
    ({"training.gradient_clip_val": "-1"}, "training.gradient_clip_val", "greater than 0"),
    ({"training.loss": "l7"}, "training.loss.name", "huber"),
    ({"training.seed": "seven"}, "training.seed", "valid integer"),
    ({"training.deterministic": "maybe"}, "training.deterministic", "valid boolean"),
    (
        {"dataloader.batch_size.training": "0"},
        "dataloader.batch_size.training",
        "greater than or equal to 1",
    ),
    (
        {"dataloader.num_workers.training": "-1"},
        "dataloader.num_workers.training",
        "greater than or equal to 0",
    ),
    ({"data.timestep": "9h"}, "data.timestep", "not a multiple of data.frequency"),
    ({"data.timestep": "3h"}, "data.timestep", "not a multiple of data.frequency"),
    ({"data.frequency": "six"}, "data.frequency", "cannot read frequency"),
    (
        {"data.forcing": "[msl]", "data.diagnostic": "[msl]"},
        "data.diagnostic",
        "both forcing",
    ),
    ({"task.input_steps": "0"}, "task.input_steps", GE1),
    ({"task.rollout": "0"}, "task.rollout.start", GE1),
    ({"system.hardware.accelerator": "tpu"}, "system.hardware.accelerator", "'cpu'"),
    ({"system.hardware.precision": "bf17"}, "system.hardware.precision", "bf16-mixed"),
    ({"system.hardware.devices": "0"}, "system.hardware.devices", GE1),
    ({"system.hardware.num_nodes": "0"}, "system.hardware.num_nodes", GE1),
    (
        {"diagnostics.log_every_n_steps": "0"},
        "diagnostics.log_every_n_steps",
        "greater than or equal to 1",
    ),
    ({"diagnostics.mlflow.enabled": "perhaps"}, "diagnostics.mlflow.enabled", "boolean"),
    ({"system.input.dataset": None}, "system.input.dataset", "must be set"),
    ({"system.input.graph": None}, "system.input.graph", "must be set"),
    ({"system.output.root": None}, "system.output.root", "must be set"),
    ({"dataloader.training.start": None}, "dataloader.training.start", "must be set"),
    (
        {"dataloader.validation.start": "1996-01-10T00"},
        "dataloader.validation.start",
        "must come after training",
    ),
    (
        {"dataloader.test.start": "1996-01-18T00"},
        "dataloader.test.start",
        "must come after validation",
    ),
    ({"dataloader.training.end": "1996-01-01"}, "dataloader.training.end", "before the start"),
    ({"dataloader.training.start": "soon"}, "dataloader.training", "soon"),
    ({"+data._target_": "os.system"}, "data._target_", "allowlist"),
    ({"model": "no_such_model"}, "overrides", "no_such_model"),
    ({"training.loss.scalers": "[area,lat]"}, "training.loss.scalers", "'lat'"),
    ({"training.loss.name": "l1"}, "training.loss.name", "huber"),
]


def _overrides(changes: dict) -> list[str]:
    merged = {**GOOD, **changes}
    return [f"{key}={value}" for key, value in merged.items() if value is not None]


@pytest.fixture
def nothing_heavy(monkeypatch):
    """Fail loudly if the pre-flight gets as far as opening the dataset."""

    def heavy(*args, **kwargs):
        raise AssertionError("the dataset was opened: the config error came too late")

    monkeypatch.setattr(preflight, "open_dataset", heavy)


def test_the_corpus_is_large_enough():
    assert len(CORPUS) >= 30


@pytest.mark.parametrize(("changes", "key", "advice"), CORPUS, ids=[c[1] for c in CORPUS])
def test_bad_config_names_its_key(changes, key, advice, nothing_heavy, tmp_path):
    out = tmp_path / "resolved.yaml"
    with pytest.raises(ConfigError) as error:
        validate_to_file("config", _overrides(changes), CONFIG_DIR, out)
    assert key in error.value.keys, str(error.value)
    assert advice in str(error.value)
    assert not out.exists()


def test_every_problem_is_reported_at_once(nothing_heavy, tmp_path):
    changes = {"training.max_epochs": "0", "+model.hiden_channels": "1", "task.input_steps": "0"}
    with pytest.raises(ConfigError) as error:
        validate_to_file("config", _overrides(changes), CONFIG_DIR, tmp_path / "r.yaml")
    assert {"training.max_epochs", "model.hiden_channels", "task.input_steps"} <= set(
        error.value.keys
    )
    assert "3 problems" in str(error.value)


def test_every_placeholder_is_reported_at_once(nothing_heavy, tmp_path):
    with pytest.raises(ConfigError) as error:
        validate_to_file("config", [], CONFIG_DIR, tmp_path / "r.yaml")
    assert {
        "system.input.dataset",
        "system.input.graph",
        "system.output.root",
        "dataloader.training.start",
    } <= set(error.value.keys)


def test_opting_in_allows_any_target(nothing_heavy, tmp_path):
    overrides = _overrides({"+data._target_": "os.system", "+allow_any_target": "true"})
    with pytest.raises(ConfigError) as error:
        validate_to_file("config", overrides, CONFIG_DIR, tmp_path / "r.yaml")
    assert "data._target_" in error.value.keys  # still an unknown key for the schema...
    assert "allowlist" not in str(error.value)  # ...but no longer refused as code
