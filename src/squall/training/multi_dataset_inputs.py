"""The inputs of a run on several datasets: each dataset's variables and statistics, the graph
check, lineage hashes and the pre-flight (the multi-dataset side of squall.training.preflight)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from squall.config.lineage import dataset_hash, file_hash
from squall.config.schema import DatasetRoles, SquallConfig
from squall.data.base import Dataset
from squall.data.dates import frequency_to_timedelta
from squall.data.multi_datamodule import check_same_frequency, common_anchors
from squall.data.sampling import sample_offsets
from squall.data.statistics import check_statistics_period, load_statistics
from squall.data.store import open_dataset
from squall.graphs.io import load_graph
from squall.graphs.multi_dataset import combined_coordinates_hash
from squall.models.computed_forcings import NAMES as COMPUTED_FORCINGS
from squall.training.preflight import check_statistics_inside_training, model_statistics


def dataset_roles(config: SquallConfig, name: str) -> DatasetRoles:
    return config.data.datasets.get(name, DatasetRoles())


def open_stores(config: SquallConfig) -> dict[str, Dataset]:
    return {
        name: open_dataset(entry.dataset) for name, entry in config.system.input.datasets.items()
    }


def dataset_variables(config: SquallConfig, name: str, store: Dataset) -> dict[str, list[str]]:
    """{variables, forcing, diagnostic} of one dataset as the model spec takes them."""
    roles = dataset_roles(config, name)
    for key in ("forcing", "diagnostic", "drop"):
        unknown = [v for v in getattr(roles, key) if v not in store.variables]
        if unknown:
            raise ValueError(
                f"data.datasets.{name}.{key} names {unknown}, which the dataset does not have; "
                f"its variables are {store.variables}"
            )
    variables = [v for v in store.variables if v not in roles.drop]
    forcing = variables if roles.role == "input" else list(roles.forcing)
    diagnostic = variables if roles.role == "output" else list(roles.diagnostic)
    return {"variables": variables, "forcing": forcing, "diagnostic": diagnostic}


def dataset_statistics(config: SquallConfig, name: str, variables: list[str]) -> dict:
    path = config.system.input.datasets[name].statistics
    return model_statistics(load_statistics(path), variables, config.data.timestep)


def task_offsets(config: SquallConfig, step: int, rollout: int):
    """Date offsets of a sample: k inputs, then the rollout targets (none for a downscaler,
    whose target is the last input time)."""
    lead = 0 if config.task.name == "downscaler" else rollout
    return sample_offsets(config.task.input_steps, lead, step)


def load_multi_dataset_graph(config: SquallConfig, stores: dict[str, Dataset]):
    """The graph, refused unless it was built on these datasets' grids, by these names."""
    expected = combined_coordinates_hash({n: s.coordinates_hash for n, s in stores.items()})
    graph, _ = load_graph(config.system.input.graph, expected_coordinates_hash=expected)
    return graph


def _spec_hash(spec: Any) -> str:
    """Content hash of a dataset given as a path or an open_dataset mapping: the stores it names
    (metadata and dates) and the selectors applied to them."""

    def resolve(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: resolve(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [resolve(item) for item in value]
        if isinstance(value, str) and Path(value).is_dir():
            return dataset_hash(value)
        return value

    if isinstance(spec, str):
        return dataset_hash(spec)
    text = json.dumps(resolve(spec), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def multi_dataset_lineage(config: SquallConfig) -> dict[str, str]:
    inputs = config.system.input
    lineage = {"graph": file_hash(inputs.graph)}
    for name, entry in inputs.datasets.items():
        lineage[f"dataset/{name}"] = _spec_hash(entry.dataset)
        lineage[f"statistics/{name}"] = file_hash(entry.statistics)
    return lineage


def multi_dataset_preflight(config: SquallConfig) -> dict[str, Any]:
    """Check every dataset, the graph, the statistics and the windows; return the resolved config
    with lineage hashes."""
    stores = open_stores(config)
    check_same_frequency(stores)
    frequency = frequency_to_timedelta(config.data.frequency)
    for name, store in stores.items():
        if store.frequency != frequency:
            raise ValueError(
                f"data.frequency={config.data.frequency} but dataset {name!r} has a step of "
                f"{store.frequency}; set data.frequency to match"
            )
    unknown = [f for f in config.data.computed_forcings if f not in COMPUTED_FORCINGS]
    if unknown:
        raise ValueError(
            f"data.computed_forcings names {unknown}; squall computes {COMPUTED_FORCINGS}"
        )
    load_multi_dataset_graph(config, stores)
    windows = {"validation": config.dataloader.validation}
    if config.dataloader.test.start and config.dataloader.test.end:
        windows["test"] = config.dataloader.test
    for name, store in stores.items():
        variables = dataset_variables(config, name, store)["variables"]
        statistics = load_statistics(config.system.input.datasets[name].statistics)
        check_statistics_period(statistics, {k: (w.start, w.end) for k, w in windows.items()})
        check_statistics_inside_training(statistics, config.dataloader.training)
        model_statistics(statistics, variables, config.data.timestep)
    step = int(frequency_to_timedelta(config.data.timestep) / frequency)
    rollouts = {
        "training": config.task.rollout.maximum,
        "validation": config.task.validation_rollout,
    }
    for stage, rollout in rollouts.items():
        window = getattr(config.dataloader, stage)
        selected = {
            name: open_dataset(store, start=window.start, end=window.end)
            for name, store in stores.items()
        }
        offsets = task_offsets(config, step, rollout)
        if not len(next(iter(common_anchors(selected, offsets).values()))):
            raise ValueError(
                f"dataloader.{stage} ({window.start}..{window.end}) holds no sample whose dates "
                f"(offsets {offsets.tolist()}) are present in every dataset: widen the window"
            )
    resolved = config.model_dump(mode="json")
    resolved["lineage"] = multi_dataset_lineage(config)
    return resolved
