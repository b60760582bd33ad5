"""The storm sample's splits and the overrides the pipeline passes, for tests to share."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRAIN = ("1996-01-05T00", "1996-01-16T18")
VALIDATION = ("1996-01-17T00", "1996-01-18T18")
TEST = ("1996-01-19T00", "1996-01-20T18")


def pipeline_overrides(inputs: dict[str, Path], output_root: Path) -> list[str]:
    """The Hydra overrides the pipeline passes, for tests that call the library directly."""
    return [
        f"system.input.dataset={inputs['dataset']}",
        f"system.input.graph={inputs['graph']}",
        f"system.input.statistics={inputs['statistics']}",
        f"system.output.root={output_root}",
        f"dataloader.training.start={TRAIN[0]}",
        f"dataloader.training.end={TRAIN[1]}",
        f"dataloader.validation.start={VALIDATION[0]}",
        f"dataloader.validation.end={VALIDATION[1]}",
        f"dataloader.test.start={TEST[0]}",
        f"dataloader.test.end={TEST[1]}",
        f"diagnostics.mlflow.tracking_uri=sqlite:///{output_root}/mlflow.db",
        f"diagnostics.mlflow.artifact_location={output_root}/mlartifacts",
    ]
