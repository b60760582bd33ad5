"""The Snakemake pipeline as a user runs it, on a copy of the repository and the real sample."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from storm_sample import REPO

PIPELINE_FILES = ["Snakefile", "workflow", "configs", "samples", "profiles"]


def _snakemake(workdir: Path, *args: str) -> str:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--profile", "profiles/local", "--cores", "2", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if result.returncode != 0:
        logs = "\n".join(p.read_text()[-3000:] for p in (workdir / "results/logs").rglob("*.log"))
        pytest.fail(f"snakemake {' '.join(args)} failed:\n{result.stderr[-5000:]}\n{logs}")
    return result.stdout + result.stderr


def _planned_jobs(output: str) -> set[str]:
    """Rule names in the 'Job stats' table of a dry run."""
    if "Nothing to be done" in output:
        return set()
    table = output.split("Job stats:")[1].split("total")[0]
    return {m.group(1) for m in re.finditer(r"^(\w+)\s+\d+\s*$", table, re.MULTILINE)}


def _set_overrides(workdir: Path, overrides: list[str]) -> None:
    path = workdir / "configs/pipeline.yaml"
    config = yaml.safe_load(path.read_text())
    config["experiments"]["storm"]["overrides"] = overrides
    config["experiments"]["storm"]["training_config"] = "debug"
    path.write_text(yaml.safe_dump(config, sort_keys=False))


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("pipeline")
    for name in PIPELINE_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, workdir / name)
        else:
            shutil.copy2(source, workdir / name)
    _set_overrides(workdir, [])
    _snakemake(workdir)
    return workdir


def test_pipeline_produces_every_stage_output(pipeline):
    results = pipeline / "results"
    for path in (
        "datasets/storm.zarr/.zgroup",
        "storm/graph.pt",
        "storm/statistics.json",
        "storm/resolved.yaml",
        "storm/checkpoints/best.ckpt",
        "storm/model.ckpt",
        "storm/model.squall/weights.safetensors",
        "storm/model.squall/metadata.json",
        "storm/evaluation/scores.csv",
        "storm/evaluation/plots/rmse_by_lead.png",
        "storm/evaluation/plots/forecast_map.png",
        "mlflow.db",
    ):
        assert (results / path).exists(), path
    for rule in ("dataset_storm", "storm/graph", "storm/train", "storm/evaluate"):
        assert (results / "benchmarks" / f"{rule}.tsv").is_file()
    assert _planned_jobs(_snakemake(pipeline, "-n")) == set()


def test_report_contains_scores_and_plots(pipeline):
    _snakemake(pipeline, "--report", "results/report.html")
    report = (pipeline / "results/report.html").read_text(errors="ignore")
    for name in ("scores.csv", "rmse_by_lead.png", "scorecard.png", "spectra.png"):
        assert name in report


def test_editing_a_training_setting_reruns_only_the_stages_it_affects(pipeline):
    _set_overrides(pipeline, ["training.max_epochs=2"])
    try:
        planned = _planned_jobs(_snakemake(pipeline, "-n"))
    finally:
        _set_overrides(pipeline, [])
    # The config stage (seconds) reruns because the resolved config changes; nothing upstream.
    assert planned == {"validate_config", "train", "export", "predict", "evaluate", "all"}


def test_one_stage_reruns_alone(pipeline):
    graph = pipeline / "results/storm/graph.pt"
    graph.unlink()
    output = _snakemake(pipeline, "results/storm/graph.pt")
    assert graph.is_file()
    assert re.findall(r"^(?:local)?rule (\w+):", output, re.MULTILINE) == ["graph"]
