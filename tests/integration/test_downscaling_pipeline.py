"""The pipeline's multi-dataset experiments (configs/pipeline.yaml: storm_downscaling,
storm_multi_dataset) plan their own graph, per-dataset statistics, forecasts and evaluation, the
cut-out LAM (storm_lam_cutout) its derived dataset, and the single-dataset storm experiment keeps
its rules. One dry run on a copy of the repository."""

from __future__ import annotations

import shutil

from storm_sample import REPO
from test_pipeline import PIPELINE_FILES, _planned_jobs, _snakemake

TARGETS = [
    "results/storm_downscaling/evaluation/scores.csv",
    "results/storm_multi_dataset/evaluation/scores.csv",
    "results/storm_lam_cutout/evaluation/scores.csv",
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
    planned = _planned_jobs(plan)
    assert {"multi_dataset_graph", "dataset_statistics", "evaluate_downscaling"} <= planned
    assert {"predict_multi_dataset", "evaluate_multi_dataset", "derived_dataset"} <= planned
    assert "--dataset=coarse={dataset: results/datasets/storm.zarr, thinning: 2}" in plan
    for name in ("coarse", "fine", "surface", "upper"):
        assert f"statistics_{name}.json" in plan
    # the single-dataset experiment: its graph, statistics, predict and evaluate rules
    assert "--dataset results/datasets/storm.zarr results/storm/graph.pt" in plan
    assert "squall evaluate results/storm/forecasts.zarr" in plan
    assert "squall evaluate-downscaling results/storm_downscaling/model.squall" in plan
    assert "squall predict-multi-dataset results/storm_multi_dataset/model.squall" in plan
    assert "squall evaluate-multi-dataset results/storm_multi_dataset/forecasts" in plan
    assert "--truth=upper={dataset: results/datasets/storm.zarr, select: [u_500, v_500]" in plan
    # the cut-out is derived from the storm store, then used as any recipe's store
    assert "squall dataset derive configs/datasets/storm_cutout.yaml" in plan
    assert "--dataset results/datasets/storm_cutout.zarr results/storm_lam_cutout/graph.pt" in plan
