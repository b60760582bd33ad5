"""The pre-flight dry run: one real sample forward and backward, and a memory estimate."""

from __future__ import annotations

import json

from storm_sample import REPO, pipeline_overrides

from squall.training.preflight import validate_to_file

CONFIG_DIR = REPO / "configs/training"


def _report(storm_inputs, root, *extra):
    out = root / "resolved.yaml"
    validate_to_file(
        "debug", [*pipeline_overrides(storm_inputs, root), *extra], CONFIG_DIR, out, dry_run=True
    )
    assert out.is_file()
    return json.loads((root / "resolved.preflight.json").read_text())


def test_dry_run_reports_parameters_and_memory(storm_inputs, tmp_path):
    one = _report(storm_inputs, tmp_path / "one")
    assert one["parameters"] > 1000 and one["trainable_parameters"] == one["parameters"]
    assert one["activation_bytes_per_sample"] > 0
    # Longer rollouts keep more activations; a bigger batch multiplies them.
    longer = _report(
        storm_inputs, tmp_path / "longer", "task.rollout=3", "task.validation_rollout=3"
    )
    assert longer["activation_bytes_per_sample"] > 2 * one["activation_bytes_per_sample"]
    bigger = _report(storm_inputs, tmp_path / "bigger", "dataloader.batch_size.training=8")
    grown = bigger["estimated_peak_bytes_per_device"] - one["estimated_peak_bytes_per_device"]
    assert abs(grown - 4 * one["activation_bytes_per_sample"]) <= 0.01 * grown
