"""The pipeline's multi-dataset experiments (configs/pipeline.yaml: storm_downscaling,
storm_multi_dataset) plan their own graph, per-dataset statistics and downscaling evaluation,
and the single-dataset storm experiment keeps its rules. One dry run on a copy of the repository."""

from __future__ import annotations

import shutil

from storm_sample import REPO
from test_pipeline import PIPELINE_FILES, _planned_jobs, _snakemake

TARGETS = [
    "results/storm_downscaling/evaluation/scores.csv",
    "results/storm_multi_dataset/model.squall",
    "results/storm/evaluation/scores.csv",
]


def test_multi_dataset_experiments_plan_their_rules(tmp_path):
    for name in PIPELINE_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name)
        else:
            shutil.copy2(source, tmp_path / name)
    plan = _snakemake(tmp_path, "-n", "-p", *TARGETS)
    assert {"multi_dataset_graph", "dataset_statistics", "evaluate_downscaling"} <= _planned_jobs(
        plan
    )
    assert "--dataset=coarse={dataset: results/datasets/storm.zarr, thinning: 2}" in plan
    for name in ("coarse", "fine", "surface", "upper"):
        assert f"statistics_{name}.json" in plan
    # the single-dataset experiment: its graph, statistics, predict and evaluate rules
    assert "--dataset results/datasets/storm.zarr results/storm/graph.pt" in plan
    assert "squall evaluate results/storm/forecasts.zarr" in plan
    assert "squall evaluate-downscaling results/storm_downscaling/model.squall" in plan
