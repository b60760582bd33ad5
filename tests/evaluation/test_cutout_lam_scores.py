"""A limited-area model on a cut-out of the storm sample (configs/datasets/storm_cutout.yaml:
full resolution in a box, the grid thinned by 2 outside): the derived store records its parts,
the graph turns them into `cutout_mask`, predict overwrites the outer points with the truth and
marks them, and evaluate scores inside the domain only."""

from __future__ import annotations

import numpy as np
import xarray as xr
import yaml
from storm_sample import REPO, TEST, TRAIN, pipeline_overrides
from test_task_scores import export_untrained

from squall.data.derived import create_derived_dataset
from squall.data.statistics import create_statistics_file
from squall.data.store import open_dataset
from squall.evaluation.evaluate import evaluate
from squall.evaluation.predict import predict_to_zarr
from squall.graphs.from_dataset import create_graph_for_dataset
from squall.graphs.io import load_graph

CUTOUT_OVERRIDES = ["task.boundary.ring_width=0", "task.boundary.domain_mask=cutout_mask"]


def _rmse_table(scores):
    rmse = scores[scores.metric == "rmse"]
    return rmse.pivot_table(
        index=["variable", "lead_time_hours"], columns="forecast", values="value"
    )


def test_cutout_lam_is_scored_inside_its_domain_only(storm_inputs, tmp_path):
    recipe = yaml.safe_load((REPO / "configs/datasets/storm_cutout.yaml").read_text())
    for member in recipe["derived"]["cutout"]:
        member["dataset"] = str(storm_inputs["dataset"])
    (tmp_path / "cutout.yaml").write_text(yaml.safe_dump(recipe))
    dataset = create_derived_dataset(tmp_path / "cutout.yaml", tmp_path / "cutout.zarr")
    store = open_dataset(dataset)
    regional = 17 * 13  # 30-50N every 1.25 deg, 110-80W every 2.5 deg
    assert store.metadata["grids"][0] == regional and len(store.latitudes) > regional

    graph_path = create_graph_for_dataset(
        REPO / "configs/training/graph/limited_area.yaml", dataset, tmp_path / "graph.pt"
    )
    graph, _ = load_graph(graph_path)
    inside = graph["data"].cutout_mask.numpy()
    assert inside[:regional].all() and not inside[regional:].any()
    statistics = create_statistics_file(dataset, tmp_path / "statistics.json", *TRAIN)
    inputs = {"dataset": dataset, "graph": graph_path, "statistics": statistics}
    artifact = export_untrained(
        "lam", pipeline_overrides(inputs, tmp_path) + CUTOUT_OVERRIDES, tmp_path / "model.squall"
    )

    path = predict_to_zarr(artifact, dataset, *TEST, 12, tmp_path / "f.zarr", progress=False)
    forecasts = xr.open_zarr(path)
    np.testing.assert_array_equal(forecasts.forced.values, ~inside)
    # the outer points are the truth at every step (the boundary forcing)
    init = int(np.searchsorted(store.dates, forecasts.init_time.values[0]))
    truth = store[init + 2][:, 0, :].T  # +12 h, (point, variable)
    outer = forecasts.forecast.values[0, 1, 0][~inside]
    np.testing.assert_allclose(outer, truth[~inside], rtol=1e-5)

    scores = evaluate(path, dataset, TRAIN, tmp_path / "evaluation")
    assert "inside the domain only" in scores.attrs["area_weights"]
    assert (tmp_path / "evaluation" / "plots" / "spectra.png").is_file()  # a note: not regular
    masked = _rmse_table(scores)
    # the untrained model is persistence inside its domain: scored there, the two are alike
    np.testing.assert_allclose(masked["model"], masked["persistence"], rtol=1e-4)
    # scored everywhere, the exact boundary would flatter it
    unmasked_path = tmp_path / "all_points.zarr"
    forecasts.drop_vars("forced").to_zarr(unmasked_path, zarr_format=2, consolidated=True)
    flattered = _rmse_table(evaluate(unmasked_path, dataset, TRAIN, tmp_path / "all_points"))
    assert (flattered["model"] < flattered["persistence"]).all()
