"""Forecasts and scores of a forecaster on several datasets, on the real storm sample: the
surface fields on the storm grid and the 500 hPa winds on that grid thinned by 2 (as the
pipeline's storm_multi_dataset). predict-multi-dataset writes one zarr per output dataset in
the forecasts layout, evaluate-multi-dataset scores each against its own truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from multi_dataset_graph import RECIPE
from storm_sample import TEST, TRAIN

from squall.data.store import open_dataset
from squall.evaluation.evaluate_multi_dataset import evaluate_multi_dataset
from squall.evaluation.predict_multi_dataset import (
    predict_multi_dataset,
    predict_multi_dataset_to_dir,
)
from squall.export.artifact import write_artifact
from squall.graphs.data_nodes import DataNodes
from squall.graphs.multi_dataset import combined_coordinates_hash, create_multi_dataset_graph
from squall.models.multi_dataset import MultiDatasetModel

SELECTIONS = {
    "surface": {"select": ["msl", "t_surface", "u_surface", "v_surface"]},
    "upper": {"select": ["u_500", "v_500"], "thinning": 2},
}


def _statistics(store) -> dict[str, list[float]]:
    stored, tendencies = store.statistics, store.statistics_tendencies("6h")
    return {
        "mean": stored["mean"].tolist(),
        "stdev": stored["stdev"].tolist(),
        "tendency_stdev": tendencies["stdev"].tolist(),
    }


@pytest.fixture(scope="module")
def setup(storm_inputs, tmp_path_factory):
    """An exported two-dataset forecaster (untrained: its zero output heads make every
    prognostic forecast persistence) and its datasets."""
    root = tmp_path_factory.mktemp("multi_dataset_forecasts")
    datasets = {
        name: {"dataset": str(storm_inputs["dataset"]), **selection}
        for name, selection in SELECTIONS.items()
    }
    stores = {name: open_dataset(spec) for name, spec in datasets.items()}
    graph = create_multi_dataset_graph(
        {name: DataNodes(s.latitudes, s.longitudes) for name, s in stores.items()}, RECIPE
    )
    spec = {
        "datasets": {
            name: {"variables": list(store.variables), "forcing": [], "diagnostic": []}
            for name, store in stores.items()
        },
        "computed_forcings": ["cos_local_time", "sin_local_time"],
        "input_steps": 2,
        "timestep_seconds": 6 * 3600,
        "lead_steps": 1,
        "network": {"hidden_channels": 8, "processor_layers": 1},
    }
    statistics = {name: _statistics(store) for name, store in stores.items()}
    model = MultiDatasetModel(graph, spec, statistics)
    artifact = write_artifact(
        model,
        graph,
        statistics,
        root / "model.squall",
        {},
        combined_coordinates_hash({n: s.coordinates_hash for n, s in stores.items()}),
    )
    return {"root": root, "artifact": artifact, "datasets": datasets, "stores": stores}


def test_forecasts_and_scores_per_output_dataset(setup):
    root, datasets = setup["root"], setup["datasets"]
    forecasts_dir = predict_multi_dataset_to_dir(
        setup["artifact"], datasets, *TEST, 24, root / "forecasts", progress=False
    )
    assert sorted(p.name for p in forecasts_dir.iterdir()) == ["surface.zarr", "upper.zarr"]
    for name, store in setup["stores"].items():
        forecasts = xr.open_zarr(forecasts_dir / f"{name}.zarr")
        assert forecasts.forecast.dims == ("init_time", "lead_time", "member", "point", "variable")
        # every test date starts a forecast (inputs present; all inputs predicted, so no
        # later data is needed): 8 initial times, 4 leads, the dataset's own grid
        assert forecasts.forecast.shape == (8, 4, 1, len(store.latitudes), len(store.variables))
        assert forecasts.attrs["coordinates_hash"] == store.coordinates_hash
        assert "area_weight" in forecasts.coords
    assert xr.open_zarr(forecasts_dir / "upper.zarr").sizes["point"] == 17 * 11

    scores = evaluate_multi_dataset(forecasts_dir, datasets, TRAIN, root / "evaluation")
    written = pd.read_csv(root / "evaluation" / "scores.csv")
    assert list(written.columns[:2]) == ["dataset", "forecast"]
    assert set(written.dataset) == {"surface", "upper"}
    assert set(written.forecast) == {"model", "persistence", "climatology"}
    assert set(written[written.dataset == "upper"].variable) == {"u_500", "v_500"}
    for name in ("surface", "upper"):
        assert (root / "evaluation" / "datasets" / name / "plots" / "scorecard.png").is_file()
    # the untrained forecaster is persistence: both score alike at every lead, which checks
    # that forecasts, truth and baselines are aligned on the same dates and points
    rmse = scores[scores.metric == "rmse"].pivot_table(
        index=["dataset", "variable", "lead_time_hours"], columns="forecast", values="value"
    )
    np.testing.assert_allclose(rmse["model"], rmse["persistence"], rtol=1e-4)
    assert (rmse["model"] > 0).all()


def test_the_datasets_must_match_the_model(setup):
    datasets = dict(setup["datasets"])
    with pytest.raises(ValueError, match=r"give the datasets \['upper'\]"):
        predict_multi_dataset(setup["artifact"], {"surface": datasets["surface"]}, *TEST, 6)
    swapped = {"surface": datasets["surface"], "upper": {**datasets["upper"], "thinning": 3}}
    with pytest.raises(ValueError, match="dataset 'upper' on the grid"):
        predict_multi_dataset(setup["artifact"], swapped, *TEST, 6, progress=False)
    with pytest.raises(ValueError, match="not a multiple of the model step"):
        predict_multi_dataset(setup["artifact"], datasets, *TEST, 9)
