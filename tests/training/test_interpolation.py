"""Temporal interpolation on the embedded hourly ERA5 sample: sample times, shapes, the
linear-in-time start, and one training step of the template."""

from __future__ import annotations

import pytest
import torch
import yaml
from storm_sample import REPO

from squall.config.compose import load_config
from squall.config.resolved import read_resolved
from squall.config.schema import TaskConfig
from squall.data.datamodule import ForecastSamples
from squall.data.recipes import create_dataset
from squall.data.statistics import create_statistics_file
from squall.graphs.from_dataset import create_graph_for_dataset
from squall.training.preflight import validate_to_file
from squall.training.trainer import assemble, train

TRAIN = ("2019-03-01T00", "2019-03-02T23")
VALIDATION = ("2019-03-03T00", "2019-03-04T23")


@pytest.fixture(scope="module")
def era5_hourly(tmp_path_factory) -> dict:
    """Four days of the hourly ERA5 UK recipe on a 16 x 21 corner of its grid (to stay fast)."""
    root = tmp_path_factory.mktemp("era5")
    recipe = yaml.safe_load((REPO / "configs/datasets/era5_uk_2t_hourly.yaml").read_text())
    recipe |= {
        "start": "2019-03-01T00",
        "end": "2019-03-04T23",
        "crop": {"lat": [0, 15], "lon": [0, 20]},
        "statistics": {"start": TRAIN[0], "end": TRAIN[1]},
    }
    dataset = create_dataset(recipe, root / "era5.zarr", REPO)
    graph = create_graph_for_dataset(
        REPO / "configs/training/graph/limited_area.yaml", dataset, root / "graph.pt"
    )
    statistics = create_statistics_file(dataset, root / "statistics.json", *TRAIN)
    return {"root": root, "dataset": dataset, "graph": graph, "statistics": statistics}


def overrides(inputs: dict, out) -> list[str]:
    return [
        f"system.input.dataset={inputs['dataset']}",
        f"system.input.graph={inputs['graph']}",
        f"system.input.statistics={inputs['statistics']}",
        f"system.output.root={out}",
        f"dataloader.training.start={TRAIN[0]}",
        f"dataloader.training.end={TRAIN[1]}",
        f"dataloader.validation.start={VALIDATION[0]}",
        f"dataloader.validation.end={VALIDATION[1]}",
        "data.frequency=1h",  # data.timestep stays 6h: the spacing of the inputs
        "model.hidden_channels=8",
        "training.max_epochs=1",
        "training.limit_train_batches=1",
        "training.limit_val_batches=1",
        "diagnostics.mlflow.enabled=false",
        "diagnostics.plots.enabled=false",
    ]


def test_samples_hold_the_inputs_then_the_hours_between(era5_hourly):
    samples = ForecastSamples(
        str(era5_hourly["dataset"]), *TRAIN, ["2t"], 2, 0, 1, offsets=[0, 6, 1, 2, 3, 4, 5]
    )
    assert len(samples) == 48 - 6  # every hour with its 6-hour window inside two days
    item = samples[0]
    hours = (item["time"] - item["time"][0]) // 3600
    assert hours.tolist() == [0, 6, 1, 2, 3, 4, 5]
    assert item["data"].shape == (7, 1, 16 * 21, 1)


def test_untrained_interpolator_is_linear_in_time(era5_hourly, tmp_path):
    config = load_config(
        "interpolator", overrides(era5_hourly, tmp_path), REPO / "configs/training"
    )
    assembly = assemble(config)
    task = assembly.task
    assert sorted(task.val_mse) == [f"2t__{hour}h" for hour in range(1, 6)]
    loader = assembly.datamodule.val_dataloader()
    batch = assembly.datamodule.on_after_batch_transfer(next(iter(loader)), 0)
    with torch.no_grad():
        prediction, target, skip = task._roll_out(batch, 1)
    size, points = batch["data"].shape[0], 16 * 21
    assert prediction.shape == target.shape == skip.shape == (size, 5, 1, points, 1)
    # The last layer starts at zero: the prediction is the linear interpolation of the inputs.
    data = task.model.normalizer.normalise(batch["data"])
    weights = torch.arange(1, 6, dtype=torch.float32)[None, :, None, None, None] / 6
    linear = data[:, :1] + weights * (data[:, 1:2] - data[:, :1])
    assert torch.allclose(prediction, linear, atol=1e-5)
    assert not torch.allclose(prediction, target, atol=1e-2)  # real weather is not linear


def test_interpolator_template_trains_one_step(era5_hourly, tmp_path):
    resolved = tmp_path / "resolved.yaml"
    validate_to_file(
        "interpolator", overrides(era5_hourly, tmp_path), REPO / "configs/training", resolved
    )
    best = train(read_resolved(resolved))
    checkpoint = torch.load(best, weights_only=True)
    assert checkpoint["global_step"] == 1
    weights = checkpoint["state_dict"].values()
    assert all(torch.isfinite(v).all() for v in weights if v.is_floating_point())


@pytest.mark.parametrize(
    ("times", "message"),
    [
        ({"input": [0, 6], "target": [7]}, "lie outside"),
        ({"input": [6, 0], "target": [3]}, "two increasing offsets"),
        ({"input": [0, 6], "target": []}, "non-empty"),
    ],
)
def test_explicit_times_are_checked(times, message):
    with pytest.raises(ValueError, match=message):
        TaskConfig(name="interpolator", explicit_times=times)
    with pytest.raises(ValueError, match="input_steps must be 2"):
        TaskConfig(name="interpolator", input_steps=1)
