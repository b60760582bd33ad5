"""Assemble a run on several datasets (multi-dataset forecaster or downscaler): model spec,
model, per-dataset losses, Lightning task and datamodule (trainer.assemble's other branch)."""

from __future__ import annotations

from typing import Any

from squall.config.schema import SquallConfig
from squall.data.dates import frequency_to_timedelta
from squall.data.multi_datamodule import MultiDataModule
from squall.models.multi_dataset import NETWORK_KEYS, MultiDatasetModel
from squall.training.multi_dataset import MultiDatasetTask
from squall.training.multi_dataset_inputs import (
    dataset_roles,
    dataset_statistics,
    dataset_variables,
    load_multi_dataset_graph,
    open_stores,
    task_offsets,
)
from squall.training.trainer import Assembly, build_training_loss, initialise


def build_multi_dataset_spec(
    config: SquallConfig, datasets: dict[str, dict[str, list[str]]]
) -> dict[str, Any]:
    """The MultiDatasetModel spec; input datasets first (the order their encoders run in)."""
    network = config.model.model_dump(include=set(NETWORK_KEYS) - {"layer_kernels"})
    network["layer_kernels"] = config.model.layer_kernels.model_dump(exclude_none=True)
    ordered = sorted(datasets, key=lambda name: dataset_roles(config, name).role == "output")
    return {
        "datasets": {name: datasets[name] for name in ordered},
        "computed_forcings": list(config.data.computed_forcings),
        "input_steps": config.task.input_steps,
        "timestep_seconds": int(frequency_to_timedelta(config.data.timestep).total_seconds()),
        "lead_steps": 0 if config.task.name == "downscaler" else 1,
        "network": network,
        "preprocessing": config.model.preprocessing.model_dump(exclude_none=True),
    }


def assemble_multi_dataset(config: SquallConfig) -> Assembly:
    stores = open_stores(config)
    graph = load_multi_dataset_graph(config, stores)
    datasets = {name: dataset_variables(config, name, store) for name, store in stores.items()}
    statistics = {
        name: dataset_statistics(config, name, roles["variables"])
        for name, roles in datasets.items()
    }
    model = MultiDatasetModel(graph, build_multi_dataset_spec(config, datasets), statistics)
    initialised = initialise(model, config.training.initialisation)
    losses = {
        # each dataset's loss on its own grid: its node attributes feed the node scalers
        name: build_training_loss(
            config, model.datasets[name], statistics[name], {"data": graph[name]}
        )
        for name in model.output_names
    }
    task = MultiDatasetTask(
        model,
        config.model_dump(mode="json"),
        statistics,
        losses,
        loss_weights={n: dataset_roles(config, n).loss_weight for n in model.output_names},
        metric_weights={n: graph[n].area_weight for n in model.output_names},
    )
    frequency = next(iter(stores.values())).frequency
    step = int(frequency_to_timedelta(config.data.timestep) / frequency)
    rollout = max(config.task.rollout.maximum, config.task.validation_rollout)
    loader = config.dataloader
    datamodule = MultiDataModule(
        {
            name: {
                "dataset": config.system.input.datasets[name].dataset,
                "variables": roles["variables"],
            }
            for name, roles in datasets.items()
        },
        windows={
            "training": (loader.training.start, loader.training.end),
            "validation": (loader.validation.start, loader.validation.end),
        },
        offsets=task_offsets(config, step, rollout),
        batch_size=loader.batch_size.model_dump(),
        num_workers=loader.num_workers.model_dump(),
        seed=config.training.seed,
    )
    first_output = stores[model.output_names[0]]
    return Assembly(model, task, datamodule, statistics, initialised, first_output.field_shape)
