"""Which checkpoint a training continues from, and which MLflow run it logs to."""

from __future__ import annotations

from pathlib import Path

from squall.training.callbacks import LAST
from squall.training.walltime import resumable_checkpoint

CHECKPOINTS_TAG = "squall.checkpoints"


def resolve_resume(
    resume: str | None, checkpoints: Path, tracking_uri: str, fingerprint: str
) -> Path | None:
    """`--resume` takes a checkpoint path, `auto` (this run's last.ckpt if the run of this very
    config was interrupted or killed, else a fresh start: what the pipeline asks for), `last`
    (this run's last.ckpt if there is one), or an MLflow run id (that run's last checkpoint)."""
    if resume is None:
        return None
    if resume == "auto":
        return resumable_checkpoint(checkpoints, fingerprint)
    if resume == "last":
        path = checkpoints / LAST
        return path if path.is_file() else None
    if Path(resume).is_file():
        return Path(resume)
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        run = MlflowClient(tracking_uri=tracking_uri).get_run(resume)
    except MlflowException:
        raise ValueError(
            f"--resume {resume!r} is neither a checkpoint file, nor 'auto' or 'last', nor a run "
            f"id in the MLflow store {tracking_uri}"
        ) from None
    folder = run.data.tags.get(CHECKPOINTS_TAG)
    if folder is None or not (Path(folder) / LAST).is_file():
        raise ValueError(f"run {resume} has no last checkpoint (looked in {folder})")
    return Path(folder) / LAST


def run_tags(experiment: str, checkpoints: Path, forked_from: str | None) -> dict[str, str]:
    tags = {
        "squall.stage": "train",
        "squall.experiment": experiment,
        CHECKPOINTS_TAG: str(checkpoints.resolve()),
    }
    if forked_from:
        tags["squall.forked_from"] = forked_from
    return tags
