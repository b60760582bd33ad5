"""Config -> train -> export -> evaluate through the library, on the real storm sample."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from storm_sample import REPO, TEST, TRAIN, pipeline_overrides

from squall.config.compose import ConfigError
from squall.config.resolved import read_resolved
from squall.data.statistics import create_statistics_file
from squall.evaluation.evaluate import evaluate
from squall.evaluation.predict import predict, predict_to_zarr
from squall.export.artifact import load_artifact, zip_artifact
from squall.export.from_checkpoint import export_checkpoint
from squall.training.preflight import validate_to_file
from squall.training.trainer import train_from_file

CONFIG_DIR = REPO / "configs/training"


@pytest.fixture(scope="module")
def trained(storm_inputs, tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    resolved = root / "resolved.yaml"
    validate_to_file("debug", pipeline_overrides(storm_inputs, root), CONFIG_DIR, resolved)
    best = train_from_file(resolved)
    return {**storm_inputs, "root": root, "resolved": resolved, "best": best}


def test_resolved_config_records_lineage(trained):
    resolved = read_resolved(trained["resolved"])
    assert set(resolved["lineage"]) == {"dataset", "graph", "statistics"}
    assert resolved["dataloader"]["test"] == {"start": TEST[0], "end": TEST[1]}


def test_checkpoints_load_without_pickles(trained):
    checkpoint = torch.load(trained["best"], weights_only=True)
    assert checkpoint["hyper_parameters"]["model_spec"]["input_steps"] == 2
    assert (trained["root"] / "checkpoints" / "last.ckpt").is_file()
    summary = json.loads((trained["root"] / "training_summary.json").read_text())
    assert summary["mlflow_run_id"] and summary["steps"] == 2


def test_export_is_pickle_free_and_reproduces_the_checkpoint(trained, tmp_path, monkeypatch):
    artifact = export_checkpoint(trained["best"], tmp_path / "model.squall", trained["graph"])
    assert sorted(p.name for p in artifact.iterdir()) == ["metadata.json", "weights.safetensors"]

    def refuse(*args, **kwargs):
        raise AssertionError("loading an exported model must not call torch.load")

    monkeypatch.setattr(torch, "load", refuse)
    model, metadata = load_artifact(artifact)
    monkeypatch.undo()
    assert metadata["lineage"] == read_resolved(trained["resolved"])["lineage"]

    checkpoint = torch.load(trained["best"], weights_only=True)
    weights = {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items()}
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, weights[name], rtol=0, atol=0)
    x = torch.randn(1, 2, 1, 726, 6) + torch.tensor(metadata["statistics"]["mean"])
    out = model.rollout(x, torch.tensor([820454400]), steps=2)
    assert out.shape == (1, 2, 1, 726, 6) and torch.isfinite(out).all()


def test_predict_and_evaluate_score_model_and_baselines(trained, tmp_path):
    artifact = export_checkpoint(trained["best"], tmp_path / "model.squall", trained["graph"])
    forecasts_path = predict_to_zarr(
        artifact, trained["dataset"], *TEST, 24, tmp_path / "forecasts.zarr", progress=False
    )
    forecasts = xr.open_zarr(forecasts_path)
    assert forecasts.forecast.dims == ("init_time", "lead_time", "member", "point", "variable")
    # Every date of the test split starts a forecast (its inputs are present); leads past the
    # end of the data have no truth and are left out of the scores.
    assert forecasts.sizes["init_time"] == 8
    assert forecasts.attrs["units"]["msl"] == "Pa"

    scores = evaluate(
        forecasts_path,
        trained["dataset"],
        TRAIN,
        tmp_path / "evaluation",
        baselines={"same_model": forecasts_path},
    )
    assert set(scores["forecast"]) == {"model", "persistence", "climatology", "same_model"}
    assert set(scores["metric"]) == {"rmse", "bias", "mae", "acc"}
    rmse = scores[scores.metric == "rmse"]
    assert sorted(rmse["lead_time_hours"].unique()) == [6, 12, 18, 24]
    assert len(rmse) == 4 * 6 * 4 and np.isfinite(rmse["value"]).all()
    scored = rmse.groupby("lead_time_hours")["forecasts_scored"].max()
    assert scored.to_dict() == {6: 7, 12: 6, 18: 5, 24: 4}
    # A baseline given as a forecast zarr is scored exactly like the model.
    pivot = rmse.pivot_table(
        index=["variable", "lead_time_hours"], columns="forecast", values="value"
    )
    np.testing.assert_allclose(pivot["same_model"], pivot["model"])
    assert rmse.loc[rmse.variable == "u_500", "level"].eq(500).all()

    on_disk = pd.read_csv(tmp_path / "evaluation" / "scores.csv")
    assert len(on_disk) == len(scores)
    nested = json.loads((tmp_path / "evaluation" / "scores.json").read_text())
    assert nested["model"]["msl"]["rmse"]["6"] == pytest.approx(
        float(pivot.loc[("msl", 6), "model"])
    )
    for plot in ("rmse_by_lead", "acc_by_lead", "scorecard", "forecast_map", "spectra"):
        assert (tmp_path / "evaluation" / "plots" / f"{plot}.png").read_bytes()[:4] == b"\x89PNG"


def test_zipped_model_predicts_the_same(trained, tmp_path):
    artifact = export_checkpoint(trained["best"], tmp_path / "model.squall", trained["graph"])
    zipped = zip_artifact(artifact)
    from_dir = predict(artifact, trained["dataset"], *TEST, 12, progress=False)
    from_zip = predict(zipped, trained["dataset"], *TEST, 12, progress=False)
    np.testing.assert_array_equal(from_dir.forecast.values, from_zip.forecast.values)


def test_training_refuses_inputs_changed_since_validation(trained, tmp_path):
    resolved = read_resolved(trained["resolved"])
    changed = create_statistics_file(
        trained["dataset"], tmp_path / "statistics.json", TRAIN[0], "1996-01-15T18"
    )
    resolved["system"]["input"]["statistics"] = str(changed)
    from squall.training.trainer import train

    with pytest.raises(ValueError, match="inputs changed since this config was validated"):
        train(resolved)


def test_preflight_refuses_statistics_overlapping_validation(storm_inputs, tmp_path):
    leaky = create_statistics_file(
        storm_inputs["dataset"], tmp_path / "leaky.json", TRAIN[0], "1996-01-18T00"
    )
    overrides = pipeline_overrides({**storm_inputs, "statistics": leaky}, tmp_path)
    with pytest.raises(ValueError, match="overlaps the validation period"):
        validate_to_file("debug", overrides, CONFIG_DIR, tmp_path / "resolved.yaml")
    assert not (tmp_path / "resolved.yaml").exists()


def test_preflight_refuses_a_graph_of_another_grid(storm_inputs, tmp_path):
    from squall.graphs.create import build_graph
    from squall.graphs.io import save_graph

    lat, lon = np.meshgrid(np.arange(30, 50, 2.0), np.arange(-100, -80, 2.0), indexing="ij")
    other = save_graph(
        build_graph(lat.ravel(), lon.ravel(), mesh_refinement=4, encoder_cutoff_factor=1.2),
        tmp_path / "other.pt",
        coordinates_hash="0123456789abcdef",
        config={},
    )
    overrides = pipeline_overrides({**storm_inputs, "graph": other}, tmp_path)
    with pytest.raises(ValueError, match="0123456789abcdef"):
        validate_to_file("debug", overrides, CONFIG_DIR, tmp_path / "resolved.yaml")


def test_ensemble_forecasts_get_ensemble_scores(trained, tmp_path):
    artifact = export_checkpoint(trained["best"], tmp_path / "model.squall", trained["graph"])
    path = predict_to_zarr(
        artifact, trained["dataset"], *TEST, 12, tmp_path / "f.zarr", progress=False, members=3
    )
    forecasts = xr.open_zarr(path)
    assert forecasts.sizes["member"] == 3
    scores = evaluate(path, trained["dataset"], TRAIN, tmp_path / "evaluation")
    assert {"crps", "spread_skill"} <= set(scores.metric)
    model = scores[scores.forecast == "model"]
    # A deterministic model repeated 3 times: no spread, and its CRPS is its MAE.
    assert (model[model.metric == "spread_skill"].value < 1e-4).all()  # float noise only
    crps = model[model.metric == "crps"].set_index(["variable", "lead_time_hours"]).value
    mae = model[model.metric == "mae"].set_index(["variable", "lead_time_hours"]).value
    np.testing.assert_allclose(crps, mae, rtol=1e-5)
    assert (tmp_path / "evaluation" / "plots" / "rank_histograms.png").is_file()


@pytest.mark.parametrize(
    ("override", "error", "message"),
    [
        ("data.forcing=[lsm]", ValueError, r"data.forcing names \['lsm'\]"),
        ("+training.epochs=3", ConfigError, "did you mean 'training.max_epochs'"),
        (
            "data.computed_forcings=[tide]",
            ValueError,
            r"computed_forcings names \['tide'\].*cos_local_time",
        ),
        ("dataloader.training.start=1996-01-08", ValueError, "outside the training split"),
        ("task.validation_rollout=8", ValueError, r"dataloader.validation .*widen the window"),
    ],
)
def test_preflight_refuses(override, error, message, storm_inputs, tmp_path):
    overrides = [*pipeline_overrides(storm_inputs, tmp_path), override]
    with pytest.raises(error, match=message):
        validate_to_file("debug", overrides, CONFIG_DIR, tmp_path / "resolved.yaml")
    assert not (tmp_path / "resolved.yaml").exists()
