"""Every shipped top-level training template runs one training step on the real sample."""

from __future__ import annotations

import pytest
import torch
from storm_sample import REPO, pipeline_overrides

from squall.config.resolved import read_resolved
from squall.training.preflight import validate_to_file
from squall.training.trainer import train

CONFIG_DIR = REPO / "configs/training"
# Templates on several datasets (downscaling, multi_dataset) take one store per dataset: their
# one-step runs are in tests/training/test_downscaling_templates.py.
MULTI_DATASET = {"downscaling", "multi_dataset"}
TEMPLATES = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if p.stem not in MULTI_DATASET)
ONE_STEP = [
    "training.max_epochs=1",
    "training.limit_train_batches=1",
    "training.limit_val_batches=1",
    "diagnostics.mlflow.enabled=false",
    "diagnostics.plots.enabled=false",
]


@pytest.mark.parametrize("template", TEMPLATES)
def test_template_trains_one_step(template, storm_inputs, tmp_path):
    resolved = tmp_path / "resolved.yaml"
    validate_to_file(
        template, [*pipeline_overrides(storm_inputs, tmp_path), *ONE_STEP], CONFIG_DIR, resolved
    )
    best = train(read_resolved(resolved))
    checkpoint = torch.load(best, weights_only=True)
    assert checkpoint["global_step"] == 1
    assert all(
        torch.isfinite(v).all() for v in checkpoint["state_dict"].values() if v.is_floating_point()
    )
