"""The ensemble CRPS and diffusion methods end to end on the storm sample: train a few steps,
resume, export, predict with members, evaluate with CRPS, spread/skill and rank histograms."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
import xarray as xr
from storm_sample import REPO, TEST, TRAIN, pipeline_overrides
from tiny_graph import TINY_STATISTICS, tiny_forecast_model

from squall.config.resolved import read_resolved
from squall.config.schema import SquallConfig
from squall.evaluation.evaluate import evaluate
from squall.evaluation.predict import predict_to_zarr
from squall.export.artifact import load_artifact
from squall.export.from_checkpoint import export_checkpoint
from squall.models.diffusion import DiffusionForecastModel
from squall.training.crps import EnsembleLoss
from squall.training.ensemble_forecaster import EnsembleForecaster
from squall.training.preflight import validate_to_file
from squall.training.trainer import train

CONFIG_DIR = REPO / "configs/training"
FEW_STEPS = [
    "training.max_epochs=1",
    "training.limit_train_batches=2",
    "training.limit_val_batches=1",
    "diagnostics.mlflow.enabled=false",
    "diagnostics.plots.enabled=false",
    "model.hidden_channels=16",
    "model.processor_layers=1",
]


def _tiny_ensemble(members: int) -> EnsembleForecaster:
    torch.manual_seed(0)
    model = tiny_forecast_model(noise_channels=4)
    # away from the zero start (persistence, noise ignored) so that members differ at once
    for name, parameter in model.named_parameters():
        if "scale_shift" in name or "output_mlp" in name:
            torch.nn.init.normal_(parameter, std=0.3)
    config = {
        "task": {
            "rollout": {"start": 2, "maximum": 2},
            "validation_rollout": 2,
            "ensemble": {"members": members},
        },
        "lineage": {},
    }
    loss = EnsembleLoss("almost_fair_crps", [])
    return EnsembleForecaster(model, config, TINY_STATISTICS, loss, torch.ones(30))


def test_members_differ_and_the_crps_gradient_reaches_the_noise_conditioning():
    task = _tiny_ensemble(members=3)
    batch = {"data": torch.randn(2, 3, 1, 30, 2), "time": torch.zeros(2, 3, dtype=torch.long)}
    predictions, targets, skip = task._roll_out(batch, 2)
    assert predictions.shape == (2, 2, 3, 30, 2)
    assert not torch.allclose(predictions[:, :, 0], predictions[:, :, 1])
    task.loss(predictions, targets, skip).backward()
    conditioning = [p for n, p in task.named_parameters() if "scale_shift" in n]
    assert conditioning and all(p.grad is not None and p.grad.abs().sum() > 0 for p in conditioning)


def test_an_ensemble_dataset_is_refused_with_advice():
    task = _tiny_ensemble(members=3)
    batch = {"data": torch.randn(1, 3, 2, 30, 2), "time": torch.zeros(1, 3, dtype=torch.long)}
    with pytest.raises(ValueError, match="select one ensemble member"):
        task._roll_out(batch, 1)


@pytest.mark.parametrize(
    ("task", "model", "loss", "message"),
    [
        ({"name": "ensemble_forecaster"}, {"noise_channels": 4}, "mse", "needs an ensemble loss"),
        ({"name": "forecaster"}, {}, "fair_crps", "set task.name=ensemble_forecaster"),
        ({"name": "ensemble_forecaster"}, {}, "fair_crps", "model.noise_channels > 0"),
        (
            {"name": "ensemble_forecaster", "ensemble": {"members": 1}},
            {"noise_channels": 4},
            "fair_crps",
            "members >= 2",
        ),
        ({"name": "diffusion_forecaster"}, {"noise_channels": 4}, "mae", "weighted mse"),
        (
            {"name": "diffusion_forecaster", "rollout": 2},
            {"noise_channels": 4},
            "mse",
            "single steps",
        ),
    ],
)
def test_config_refuses_a_method_without_its_model_or_loss(task, model, loss, message):
    config = {
        "dataloader": {
            "training": {"start": "a", "end": "b"},
            "validation": {"start": "c", "end": "d"},
        },
        "system": {
            "input": {"dataset": "x", "graph": "g", "statistics": "s"},
            "output": {"root": "r"},
        },
        "task": task,
        "model": model,
        "training": {"loss": loss},
    }
    with pytest.raises(ValueError, match=message):
        SquallConfig.model_validate(config)


def _train(template: str, inputs, root, extra: list[str]) -> tuple[dict, object]:
    resolved = root / "resolved.yaml"
    overrides = [*pipeline_overrides(inputs, root), *FEW_STEPS, *extra]
    validate_to_file(template, overrides, CONFIG_DIR, resolved)
    return read_resolved(resolved), train(read_resolved(resolved))


@pytest.fixture(scope="module")
def ensemble_run(storm_inputs, tmp_path_factory):
    root = tmp_path_factory.mktemp("ensemble")
    config, best = _train("ensemble_crps", storm_inputs, root, ["task.ensemble.members=3"])
    return {"root": root, "config": config, "best": best}


def test_ensemble_training_resumes_from_its_last_checkpoint(ensemble_run):
    checkpoints = ensemble_run["root"] / "checkpoints"
    first = torch.load(checkpoints / "last.ckpt", weights_only=True)
    assert first["global_step"] == 2
    longer = {**ensemble_run["config"]}
    longer["training"] = {**longer["training"], "max_epochs": 2}
    train(longer, resume=str(checkpoints / "last.ckpt"))
    second = torch.load(checkpoints / "last.ckpt", weights_only=True)
    assert second["global_step"] == 4  # two more steps: the run went on from step 2


def _predict_and_evaluate(best, inputs, out, members: int) -> tuple[xr.Dataset, pd.DataFrame]:
    artifact = export_checkpoint(best, out / "model.squall", inputs["graph"])
    path = predict_to_zarr(
        artifact,
        inputs["dataset"],
        *TEST,
        12,
        out / "forecasts.zarr",
        progress=False,
        members=members,
    )
    scores = evaluate(path, inputs["dataset"], TRAIN, out / "evaluation")
    return xr.open_zarr(path), scores


def test_ensemble_export_predict_evaluate(ensemble_run, storm_inputs, tmp_path):
    forecasts, scores = _predict_and_evaluate(ensemble_run["best"], storm_inputs, tmp_path, 4)
    assert forecasts.sizes["member"] == 4
    values = forecasts.forecast.values
    assert (values[:, :, 0] != values[:, :, 1]).any()  # the noise makes distinct members
    model_scores = scores[scores.forecast == "model"]
    assert {"crps", "spread_skill"} <= set(model_scores.metric)
    crps = model_scores[model_scores.metric == "crps"].value
    assert crps.notna().all() and (crps > 0).all()
    assert (tmp_path / "evaluation/plots/rank_histograms.png").is_file()


def test_diffusion_train_export_predict_evaluate(storm_inputs, tmp_path):
    extra = ["task.diffusion.sampler_steps=2", "model.noise_channels=4"]
    _, best = _train("diffusion", storm_inputs, tmp_path / "run", extra)
    model, metadata = load_artifact(
        export_checkpoint(best, tmp_path / "check.squall", storm_inputs["graph"])
    )
    assert isinstance(model, DiffusionForecastModel)
    assert metadata["model_spec"]["diffusion"]["sampler_steps"] == 2
    forecasts, scores = _predict_and_evaluate(best, storm_inputs, tmp_path, 2)
    assert forecasts.sizes["member"] == 2
    assert torch.isfinite(torch.from_numpy(forecasts.forecast.values)).all()
    assert {"crps", "spread_skill"} <= set(scores[scores.forecast == "model"].metric)
