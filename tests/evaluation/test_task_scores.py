"""predict + evaluate of an interpolator and an autoencoder (the task read from the exported
model): the windows, the references and the columns of scores.csv, on the embedded samples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml
from storm_sample import REPO, TEST, TRAIN, pipeline_overrides

from squall.config.compose import load_config
from squall.data.recipes import create_dataset
from squall.data.statistics import create_statistics_file
from squall.data.store import open_dataset
from squall.evaluation.evaluate import evaluate
from squall.evaluation.interpolation import linear_in_time, nearest_input
from squall.evaluation.predict import predict_to_zarr
from squall.export.artifact import read_metadata, write_artifact
from squall.graphs.from_dataset import create_graph_for_dataset
from squall.graphs.io import load_graph
from squall.training.trainer import assemble

CONFIGS = REPO / "configs/training"
ERA5_TRAIN = ("2019-03-01T00", "2019-03-02T23")
ERA5_TEST = ("2019-03-03T00", "2019-03-03T23")


def export_untrained(name: str, overrides: list[str], out) -> str:
    """The template's model as training would start it, exported like a trained one."""
    config = load_config(name, overrides, CONFIGS)
    assembly = assemble(config)
    graph, info = load_graph(config.system.input.graph)
    provenance = {"config": config.model_dump(mode="json")}
    return write_artifact(
        assembly.model, graph, assembly.statistics, out, provenance, info["coordinates_hash"]
    )


def test_linear_in_time_and_nearest_input_by_hand():
    first, last = np.array([[0.0, 10.0]]), np.array([[6.0, -2.0]])  # (window 1, 2 values)
    fractions = np.arange(1, 6) / 6
    linear = linear_in_time(first, last, fractions)
    assert linear.shape == (1, 5, 2)
    np.testing.assert_allclose(linear[0, :, 0], [1, 2, 3, 4, 5], atol=1e-12)
    np.testing.assert_allclose(linear[0, :, 1], [8, 6, 4, 2, 0], atol=1e-12)
    nearest = nearest_input(first, last, fractions)
    np.testing.assert_allclose(nearest[0, :, 0], [0, 0, 0, 6, 6])  # the midpoint takes first


@pytest.fixture(scope="module")
def era5_interpolator(tmp_path_factory) -> dict:
    """Three days of the hourly ERA5 UK sample on an 8 x 10 corner, and an untrained
    interpolator (the template's) for it."""
    root = tmp_path_factory.mktemp("era5_interpolation")
    recipe = yaml.safe_load((REPO / "configs/datasets/era5_uk_2t_hourly.yaml").read_text())
    recipe |= {
        "start": "2019-03-01T00",
        "end": ERA5_TEST[1],
        "crop": {"lat": [0, 7], "lon": [0, 9]},
        "statistics": {"start": ERA5_TRAIN[0], "end": ERA5_TRAIN[1]},
    }
    dataset = create_dataset(recipe, root / "era5.zarr", REPO)
    graph = create_graph_for_dataset(
        REPO / "configs/training/graph/limited_area_coarse.yaml", dataset, root / "graph.pt"
    )
    statistics = create_statistics_file(dataset, root / "statistics.json", *ERA5_TRAIN)
    overrides = [
        f"system.input.dataset={dataset}",
        f"system.input.graph={graph}",
        f"system.input.statistics={statistics}",
        f"system.output.root={root}",
        f"dataloader.training.start={ERA5_TRAIN[0]}",
        f"dataloader.training.end={ERA5_TRAIN[1]}",
        f"dataloader.validation.start={ERA5_TEST[0]}",  # no training: only for the check
        f"dataloader.validation.end={ERA5_TEST[1]}",
        "data.frequency=1h",
        "model.hidden_channels=8",
    ]
    artifact = export_untrained("interpolator", overrides, root / "model.squall")
    forecasts = predict_to_zarr(
        artifact, dataset, *ERA5_TEST, 24, root / "forecasts.zarr", progress=False
    )
    scores = evaluate(forecasts, dataset, ERA5_TRAIN, root / "evaluation")
    return {"root": root, "dataset": dataset, "forecasts": forecasts, "scores": scores}


def test_interpolator_predicts_the_hours_between_synoptic_inputs(era5_interpolator):
    forecasts = xr.open_zarr(era5_interpolator["forecasts"])
    # windows start at 00, 06 and 12 UTC of the test day (18 UTC needs the next day)
    assert [str(t)[11:13] for t in forecasts.init_time.values] == ["00", "06", "12"]
    hours = forecasts.lead_time.values / np.timedelta64(1, "h")
    assert hours.tolist() == [1, 2, 3, 4, 5]
    assert forecasts.attrs["task"] == "interpolator"
    assert forecasts.forecast.shape == (3, 5, 1, 8 * 10, 1)


def test_interpolator_scores_per_hour_against_linear_in_time(era5_interpolator):
    scores = era5_interpolator["scores"]
    assert set(scores.forecast) == {"model", "linear", "nearest_input", "climatology"}
    assert sorted(set(scores.lead_time_hours)) == [1, 2, 3, 4, 5]
    rmse = scores[scores.metric == "rmse"].pivot_table(
        index="lead_time_hours", columns="forecast", values="value"
    )
    # the untrained interpolator is linear interpolation: the same windows, the same score
    np.testing.assert_allclose(rmse["model"], rmse["linear"], rtol=1e-4)
    assert (rmse["linear"] > 0).all()
    written = pd.read_csv(era5_interpolator["root"] / "evaluation" / "scores.csv")
    assert len(written) == len(scores)


def test_linear_baseline_matches_a_hand_computation(era5_interpolator):
    """The +2 h linear RMSE, recomputed from the store: 2/3 of the 00 UTC state and 1/3 of the
    06 UTC one against the 02 UTC truth, area-weighted, averaged over the three windows."""
    store = open_dataset(era5_interpolator["dataset"])
    weights = xr.open_zarr(era5_interpolator["forecasts"]).area_weight.values
    index = {str(d)[:13]: i for i, d in enumerate(store.dates)}
    errors = []
    for hour in (0, 6, 12):
        day = "2019-03-03T"
        first, last, truth = (
            store.read([index[f"{day}{h:02d}"]])[0, 0, 0] for h in (hour, hour + 6, hour + 2)
        )
        linear = (2 * first + last) / 3
        errors.append(np.sum(weights * (linear - truth) ** 2) / np.sum(weights))
    scores = era5_interpolator["scores"]
    scored = scores[
        (scores.forecast == "linear") & (scores.metric == "rmse") & (scores.lead_time_hours == 2)
    ]
    assert scored.value.item() == pytest.approx(np.sqrt(np.mean(errors)), rel=1e-5)


def test_autoencoder_reconstructs_every_test_state(storm_inputs, tmp_path):
    overrides = pipeline_overrides(storm_inputs, tmp_path) + ["model.hidden_channels=4"]
    artifact = export_untrained("autoencoder", overrides, tmp_path / "model.squall")
    forecasts_path = predict_to_zarr(
        artifact, storm_inputs["dataset"], *TEST, 24, tmp_path / "forecasts.zarr", progress=False
    )
    forecasts = xr.open_zarr(forecasts_path)
    assert forecasts.sizes["init_time"] == 8  # every 6-hourly state of the two test days
    assert (forecasts.lead_time.values / np.timedelta64(1, "h")).tolist() == [0]
    scores = evaluate(forecasts_path, storm_inputs["dataset"], TRAIN, tmp_path / "evaluation")
    assert set(scores.forecast) == {"model", "climatology"}  # persistence would be the truth
    rmse = scores[scores.metric == "rmse"]
    assert len(rmse) == 2 * 6 and set(rmse.lead_time_hours) == {0}
    assert (rmse.value > 0).all()
    latent = scores[scores.variable == "all"].set_index("metric").value
    hidden_nodes = read_metadata(artifact)["graph"]["node_sets"]["hidden"]
    assert latent["grid_points"] == 726 and latent["input_variables"] == 6
    assert latent["hidden_nodes"] == hidden_nodes and latent["latent_channels"] == 4
    assert latent["compression_ratio"] == pytest.approx(726 * 6 / (hidden_nodes * 4))
    for plot in ("rmse_by_lead", "scorecard", "forecast_map"):
        assert (tmp_path / "evaluation" / "plots" / f"{plot}.png").is_file()
