"""The downscaling and multi_dataset templates on the real storm sample: each trains one step
through `squall config validate` and `squall train`'s library calls; config and pre-flight
errors name what to fix."""

from __future__ import annotations

import pytest
import torch
import yaml
from storm_sample import REPO, TEST, TRAIN, VALIDATION

from squall.config.compose import ConfigError, load_config
from squall.config.resolved import read_resolved
from squall.data.statistics import create_statistics_file
from squall.evaluation.downscaling import evaluate_downscaling
from squall.export.artifact import load_artifact
from squall.export.from_checkpoint import export_checkpoint
from squall.graphs.multi_dataset import create_multi_dataset_graph_file
from squall.training.preflight import validate_to_file
from squall.training.trainer import train

CONFIG_DIR = REPO / "configs/training"
GRAPH_RECIPE = CONFIG_DIR / "graph/multi_dataset.yaml"
ONE_STEP = [
    "training.max_epochs=1",
    "training.limit_train_batches=1",
    "training.limit_val_batches=1",
    "diagnostics.mlflow.enabled=false",
    "diagnostics.plots.enabled=false",
]


def _specs(storm: str) -> dict[str, dict[str, object]]:
    """The datasets of each template, as open_dataset mappings of the storm store."""
    return {
        "downscaling": {
            "coarse": {"dataset": storm, "thinning": 2},
            "fine": {"dataset": storm},
        },
        "multi_dataset": {
            "surface": {"dataset": storm, "select": ["msl", "t_surface", "u_surface", "v_surface"]},
            "upper": {"dataset": storm, "select": ["u_500", "v_500"], "thinning": 2},
        },
    }


@pytest.fixture(scope="module")
def inputs(storm_inputs, tmp_path_factory):
    """Per template: its graph and, per dataset, its statistics (training split only)."""
    root = tmp_path_factory.mktemp("multi_dataset")
    built = {}
    for template, specs in _specs(str(storm_inputs["dataset"])).items():
        graph = create_multi_dataset_graph_file(GRAPH_RECIPE, specs, root / f"{template}.pt")
        statistics = {
            name: create_statistics_file(spec, root / f"{template}_{name}.json", *TRAIN)
            for name, spec in specs.items()
        }
        built[template] = {"graph": graph, "specs": specs, "statistics": statistics}
    return built


def _overrides(built: dict, out) -> list[str]:
    overrides = [f"system.input.graph={built['graph']}", f"system.output.root={out}"]
    for name, spec in built["specs"].items():
        flow = yaml.safe_dump(spec, default_flow_style=True, width=1000).strip()
        overrides += [
            f"system.input.datasets.{name}.dataset={flow}",
            f"system.input.datasets.{name}.statistics={built['statistics'][name]}",
        ]
    for stage, (start, end) in (("training", TRAIN), ("validation", VALIDATION), ("test", TEST)):
        overrides += [f"dataloader.{stage}.start={start}", f"dataloader.{stage}.end={end}"]
    return overrides


@pytest.mark.parametrize("template", ["downscaling", "multi_dataset"])
def test_template_trains_one_step(template, inputs, tmp_path):
    resolved_path = tmp_path / "resolved.yaml"
    overrides = [*_overrides(inputs[template], tmp_path), *ONE_STEP]
    # with the pre-flight's dry run (one sample forward and backward), as the pipeline does
    resolved = validate_to_file(template, overrides, CONFIG_DIR, resolved_path, dry_run=True)
    assert resolved_path.with_suffix(".preflight.json").is_file()
    names = list(inputs[template]["specs"])
    assert set(resolved["lineage"]) == {"graph"} | {
        f"{kind}/{name}" for kind in ("dataset", "statistics") for name in names
    }
    best = train(read_resolved(resolved_path))
    checkpoint = torch.load(best, weights_only=True)
    assert checkpoint["global_step"] == 1
    state = checkpoint["state_dict"]
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    outputs = {"downscaling": ["fine"], "multi_dataset": names}[template]
    decoders = {key.split(".")[3] for key in state if key.startswith("model.network.decoders.")}
    assert decoders == set(outputs)

    # the exported model loads without training code and is scored on the test split
    model = export_checkpoint(best, tmp_path / "model.squall")
    loaded, metadata = load_artifact(model)
    assert set(metadata["variables"]) == {"computed_forcings", *names}
    if template == "downscaling":
        scores = evaluate_downscaling(model, inputs[template]["specs"], *TEST, tmp_path / "eval")
        rmse = scores[scores.metric == "rmse"]
        assert set(rmse.forecast) == {"model", "bilinear", "nearest"}
        assert len(rmse) == 3 * 6 and rmse.value.notna().all()
        assert scores.dates_scored.iloc[0] == 8  # 1996-01-19T00..01-20T18, none missing
        assert (tmp_path / "eval/scores.csv").is_file()
        assert (tmp_path / "eval/plots/scorecard.png").is_file()


def test_datasets_with_other_timesteps_fail_the_preflight(inputs, tmp_path):
    built = inputs["downscaling"]
    overrides = _overrides(built, tmp_path)
    storm = built["specs"]["fine"]["dataset"]
    key = "system.input.datasets.coarse.dataset"
    coarse = f"{key}={{dataset: {storm}, thinning: 2, frequency: 12h}}"
    overrides = [o for o in overrides if not o.startswith(key)]
    with pytest.raises(ValueError, match="share one timestep.*coarse: 12h, fine: 6h"):
        validate_to_file("downscaling", [*overrides, coarse], CONFIG_DIR, tmp_path / "r.yaml")


def test_a_graph_of_other_grids_is_refused(inputs, tmp_path):
    overrides = [*_overrides(inputs["downscaling"], tmp_path)]
    overrides = [o for o in overrides if not o.startswith("system.input.graph")]
    other = f"system.input.graph={inputs['multi_dataset']['graph']}"
    with pytest.raises(ValueError, match="coordinates hash surface=.*coarse="):
        validate_to_file("downscaling", [*overrides, other], CONFIG_DIR, tmp_path / "r.yaml")


def test_a_downscaler_output_cannot_also_be_an_input(inputs, tmp_path):
    overrides = [*_overrides(inputs["downscaling"], tmp_path), "data.datasets.fine.role=both"]
    with pytest.raises(ConfigError, match="cannot be both \\(\\['fine'\\]\\)"):
        load_config("downscaling", overrides, CONFIG_DIR)
