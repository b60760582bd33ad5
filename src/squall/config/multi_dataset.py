"""Config rules of runs on several datasets at once (system.input.datasets, data.datasets)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from squall.config.schema import SquallConfig

MULTI_DATASET_TASKS = ("forecaster", "downscaler")


def check_datasets(config: SquallConfig) -> None:
    """The two config forms do not mix, and each task gets the dataset roles it can train."""
    names = list(config.system.input.datasets)
    data, task = config.data, config.task.name
    if not names:
        if data.datasets:
            raise ValueError(
                "data.datasets is set but system.input.datasets is not: name the datasets' "
                "stores and statistics there, or remove data.datasets"
            )
        if task == "downscaler":
            raise ValueError(
                "task.name=downscaler needs several datasets: system.input.datasets with a "
                "coarse (role input) and a fine (role output) dataset"
            )
        return
    unknown = sorted(set(data.datasets) - set(names))
    if unknown:
        raise ValueError(
            f"data.datasets names {unknown}, which system.input.datasets does not have ({names})"
        )
    if data.forcing or data.diagnostic or data.drop:
        raise ValueError(
            "with several datasets, variable roles are set per dataset: move data.forcing, "
            "data.diagnostic and data.drop into data.datasets.<name>"
        )
    if task not in MULTI_DATASET_TASKS:
        raise ValueError(
            f"task.name={task} does not take several datasets; use one of {MULTI_DATASET_TASKS}"
        )
    roles = {name: data.datasets[name].role if name in data.datasets else "both" for name in names}
    if not any(role != "output" for role in roles.values()):
        raise ValueError("no dataset is an input: give one dataset role 'input' or 'both'")
    if not any(role != "input" for role in roles.values()):
        raise ValueError("no dataset is an output: give one dataset role 'output' or 'both'")
    if task == "downscaler":
        both = [name for name, role in roles.items() if role == "both"]
        if both:
            raise ValueError(
                f"the downscaler predicts its outputs at the time of its inputs, so a dataset "
                f"cannot be both ({both}): set data.datasets.<name>.role to input or output"
            )
        if config.task.rollout.maximum != 1 or config.task.validation_rollout != 1:
            raise ValueError(
                "the downscaler has no rollout: keep task.rollout and task.validation_rollout at 1"
            )
    if config.task.boundary is not None:
        raise ValueError("task.boundary (limited-area rollout) takes a single dataset")
    unsupported = {
        "model.noise_channels": config.model.noise_channels,
        "model.hierarchy_levels": config.model.hierarchy_levels > 1,
        "model.trainable_edge_channels": config.model.trainable_edge_channels,
        "model.bounding": config.model.bounding,
        "training.initialisation.checkpoint": config.training.initialisation.checkpoint,
    }
    used = [key for key, value in unsupported.items() if value]
    if used:
        raise ValueError(f"{used} are not supported with several datasets yet: unset them")
