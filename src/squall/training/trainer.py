"""Assemble and run a training: resolved config -> model, data, logger, checkpoints -> fit."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import LearningRateMonitor
from pytorch_lightning.loggers import MLFlowLogger
from pytorch_lightning.plugins.environments import SLURMEnvironment

from squall.config.lineage import check_lineage, input_lineage
from squall.config.resolved import read_resolved
from squall.config.schema import ENSEMBLE_LOSSES, SquallConfig
from squall.data.datamodule import ForecastDataModule
from squall.data.dates import frequency_to_timedelta
from squall.data.statistics import load_statistics
from squall.data.store import open_dataset
from squall.distributed.lightning import RankGroups
from squall.graphs.io import load_graph
from squall.models.diffusion import build_forecast_model
from squall.models.interface import ForecastModel
from squall.training.callbacks import FINAL, LAST, training_callbacks
from squall.training.checkpoint_io import AtomicCheckpointIO
from squall.training.crps import build_ensemble_loss
from squall.training.forecaster import Forecaster
from squall.training.initialisation import (
    check_variables,
    freeze,
    load_matching_weights,
    read_checkpoint,
)
from squall.training.losses import build_loss
from squall.training.preflight import model_statistics, model_variables
from squall.training.runs import resolve_resume, run_tags
from squall.training.scalers import build_scalers
from squall.training.tasks import METHODS, build_task, task_model_spec, task_offsets
from squall.training.tracking import SystemMetrics, store_lock
from squall.training.walltime import (
    TrainingInterrupted,
    WallTimeGuard,
    config_fingerprint,
    finish_run,
)


def build_model_spec(config: SquallConfig, variables: list[str]) -> dict[str, Any]:
    return {
        "variables": variables,
        "forcing": list(config.data.forcing),
        "diagnostic": list(config.data.diagnostic),
        "computed_forcings": list(config.data.computed_forcings),
        "input_steps": config.task.input_steps,
        "timestep_seconds": int(frequency_to_timedelta(config.data.timestep).total_seconds()),
        "network": config.model.model_dump(exclude={"preprocessing", "bounding", "layer_kernels"})
        | {"layer_kernels": config.model.layer_kernels.model_dump(exclude_none=True)},
        "preprocessing": config.model.preprocessing.model_dump(exclude_none=True),
        "bounding": [entry.model_dump() for entry in config.model.bounding],
    }


def build_training_loss(
    config: SquallConfig, model: ForecastModel, statistics: dict[str, list[float]], graph
) -> torch.nn.Module:
    """training.loss with training.scalers, over the model's output variables."""
    outputs = model.output_columns.tolist()
    output_statistics = {key: [values[i] for i in outputs] for key, values in statistics.items()}
    node_attributes = {
        key: value
        for key, value in graph["data"].items()
        if isinstance(value, torch.Tensor) and value.dim() == 1
    }
    latlon = torch.rad2deg(graph["data"].x.double())  # for scalers' regions given as boxes
    node_attributes |= {"latitude": latlon[:, 0], "longitude": latlon[:, 1]}
    if model.forced is not None:  # a limited-area model: `interior` weighs its domain only
        node_attributes["interior"] = (~model.forced).float()
    scalers = build_scalers(
        config.training.scalers, model.output_variables, output_statistics, node_attributes
    )
    settings = config.training.loss.as_settings()
    if settings["name"] in ENSEMBLE_LOSSES:
        return build_ensemble_loss(settings, scalers)
    return build_loss(settings, scalers)


def initialise(model: ForecastModel, settings) -> dict[str, Any] | None:
    """Weights from training.initialisation.checkpoint, and frozen submodules."""
    report = None
    if settings.checkpoint:
        checkpoint = read_checkpoint(settings.checkpoint)
        check_variables(checkpoint, model.spec, settings.allow_variable_remap)
        strict = settings.mode == "warm_start" and not settings.allow_variable_remap
        outcome = load_matching_weights(model, checkpoint, strict=strict)
        report = {
            "checkpoint": settings.checkpoint,
            "mode": settings.mode,
            "loaded": len(outcome["loaded"]),
            "skipped": outcome["skipped"],
            "not_in_checkpoint": outcome["not_in_checkpoint"],
        }
    if settings.freeze:
        report = {**(report or {}), "frozen": freeze(model, settings.freeze)}
    return report


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


@dataclass
class Assembly:
    """What a training run is made of, built from a validated config."""

    model: ForecastModel
    task: Forecaster
    datamodule: ForecastDataModule
    statistics: dict[str, list[float]]
    initialised: dict[str, Any] | None
    field_shape: tuple[int, ...]


def assemble(config: SquallConfig) -> Assembly:
    """Dataset, graph, statistics -> model, loss, Lightning task and datamodule."""
    inputs = config.system.input
    if inputs.datasets:  # several datasets at once, or a downscaler
        from squall.training.multi_dataset_assembly import assemble_multi_dataset

        return assemble_multi_dataset(config)
    dataset = open_dataset(inputs.dataset)
    graph, _ = load_graph(inputs.graph, expected_coordinates_hash=dataset.coordinates_hash)
    variables = model_variables(config, dataset.variables)
    statistics = model_statistics(
        load_statistics(inputs.statistics), variables, config.data.timestep
    )
    spec = task_model_spec(build_model_spec(config, variables), config.task, dataset.field_shape)
    model = build_forecast_model(graph, spec, statistics)
    initialised = initialise(model, config.training.initialisation)
    loss = build_training_loss(config, model, statistics, graph)
    task = build_task(
        model,
        config.model_dump(mode="json"),
        statistics,
        loss,
        graph["data"].area_weight,
        int(dataset.frequency.total_seconds()),
    )

    step = int(frequency_to_timedelta(config.data.timestep) / dataset.frequency)
    loader = config.dataloader
    datamodule = ForecastDataModule(
        inputs.dataset,
        windows={
            "training": (loader.training.start, loader.training.end),
            "validation": (loader.validation.start, loader.validation.end),
        },
        variables=variables,
        input_steps=config.task.input_steps,
        rollout=max(config.task.rollout.maximum, config.task.validation_rollout),
        step=step,
        batch_size=loader.batch_size.model_dump(),
        num_workers=loader.num_workers.model_dump(),
        seed=config.training.seed,
        offsets=None
        if config.task.name in ("forecaster", *METHODS)
        else task_offsets(config.task, step, 0).tolist(),
    )
    return Assembly(model, task, datamodule, statistics, initialised, dataset.field_shape)


def train(
    resolved: dict[str, Any],
    allow_lineage_mismatch: bool = False,
    resume: str | None = None,
    fork: bool = False,
) -> Path:
    """Train from a resolved config (as written by `squall config validate`).

    `resume` (a checkpoint, `auto`, `last`, or an MLflow run id) continues a run exactly: weights,
    optimiser, schedule, epoch, rollout stage and data position; with `fork` it continues
    from there as a new MLflow run. Returns the path of the best checkpoint.
    """
    config = SquallConfig.model_validate(resolved)
    if config.training.cuda_graph:
        # a graph's private memory pool fragments 1-2.5 GiB less with expandable segments (read
        # when CUDA first allocates, so before anything here touches the GPU)
        os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    root = Path(config.system.output.root)
    checkpoints = root / "checkpoints"
    fingerprint = config_fingerprint(resolved)
    # First of all: from now on a wall-time signal stops the run cleanly instead of killing it.
    guard = WallTimeGuard(
        checkpoints,
        fingerprint,
        config.training.time_limit_minutes,
        config.training.walltime_signal,
    )
    inputs = config.system.input
    if inputs.datasets:
        from squall.training.multi_dataset_inputs import multi_dataset_lineage

        current = multi_dataset_lineage(config)
    else:
        current = input_lineage(inputs.dataset, inputs.graph, inputs.statistics)
    check_lineage(config.lineage, current, allow=allow_lineage_mismatch)
    pl.seed_everything(config.training.seed, workers=True)
    assembly = assemble(config)
    model, task, datamodule = assembly.model, assembly.task, assembly.datamodule
    initialised = assembly.initialised

    checkpoints.mkdir(parents=True, exist_ok=True)
    callbacks = training_callbacks(
        config.training.model_dump(),
        config.diagnostics.model_dump(),
        root,
        field_shape=assembly.field_shape,  # for the spectra of plots
    )
    best = callbacks[0]
    callbacks.append(guard)
    loggers = []
    mlflow_settings = config.diagnostics.mlflow
    resume_path = resolve_resume(resume, checkpoints, mlflow_settings.tracking_uri, fingerprint)
    resumed = read_checkpoint(resume_path) if resume_path else None
    # (a multi-dataset model's weights are per dataset: its state dict refuses other datasets)
    if resumed is not None and not inputs.datasets:
        check_variables(resumed, model.spec, allow_remap=False)
    if mlflow_settings.enabled:
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        previous_run = (resumed or {}).get("squall", {}).get("mlflow_run_id")
        with store_lock(mlflow_settings.tracking_uri):
            logger = MLFlowLogger(
                experiment_name=mlflow_settings.experiment_name,
                run_name=mlflow_settings.run_name,
                tracking_uri=mlflow_settings.tracking_uri,
                artifact_location=mlflow_settings.artifact_location,
                run_id=None if fork else previous_run,
                tags=run_tags(
                    mlflow_settings.experiment_name, checkpoints, previous_run if fork else None
                ),
            )
        if fork or previous_run is None:  # a resumed run keeps the params it started with
            logger.log_hyperparams(_flatten(config.model_dump(mode="json")))
        loggers.append(logger)
        callbacks += [LearningRateMonitor(logging_interval="step"), SystemMetrics()]

    hardware = config.system.hardware
    if hardware.num_gpus_per_model > 1 or hardware.num_gpus_per_ensemble > 1:
        callbacks.append(RankGroups(hardware.num_gpus_per_model, hardware.num_gpus_per_ensemble))
    trainer = pl.Trainer(
        accelerator=hardware.accelerator,
        devices=hardware.devices,
        num_nodes=hardware.num_nodes,
        precision=hardware.precision,
        max_epochs=config.training.max_epochs,
        limit_train_batches=config.training.limit_train_batches,
        limit_val_batches=config.training.limit_val_batches,
        # with CUDA graphs the task steps its optimiser itself, and clips there
        gradient_clip_val=None if config.training.cuda_graph else config.training.gradient_clip_val,
        accumulate_grad_batches=config.training.accumulate_grad_batches,
        log_every_n_steps=config.diagnostics.log_every_n_steps,
        logger=loggers or False,
        callbacks=callbacks,
        plugins=_plugins(),
        default_root_dir=root,
        enable_progress_bar=False,
        deterministic="warn" if config.training.deterministic else False,
    )
    trainer.fit(task, datamodule=datamodule, ckpt_path=resume_path)
    summary = {
        "best_checkpoint": str(Path(best.best_model_path).name),
        "best_val_loss": float(best.best_model_score)
        if best.best_model_score is not None
        else None,
        "epochs": trainer.current_epoch,
        "initialisation": initialised,
        "resumed_from": str(resume_path) if resume_path else None,
        "steps": trainer.global_step,
        "parameters": sum(p.numel() for p in model.parameters()),
        "mlflow_run_id": loggers[0].run_id if loggers else None,
        "torch_threads": torch.get_num_threads(),
        "world_size": trainer.world_size,
    }
    if guard.reason is not None:
        summary["interrupted"] = guard.reason
    if trainer.is_global_zero:  # one writer under data parallelism
        temporary = root / f".training_summary.json.tmp-{os.getpid()}"
        temporary.write_text(json.dumps(summary, indent=2))
        os.replace(temporary, root / "training_summary.json")
    if guard.reason is not None:
        raise TrainingInterrupted(guard.reason, trainer.global_step, checkpoints / LAST)
    chosen = Path(best.best_model_path) if best.best_model_path else checkpoints / LAST
    if trainer.is_global_zero:
        finish_run(checkpoints, chosen, root / FINAL, fingerprint, trainer.global_step)
    return chosen


def _plugins() -> list[Any]:
    plugins: list[Any] = [AtomicCheckpointIO()]
    # Under Slurm, Lightning would take SIGUSR1 to requeue the job itself; the wall-time
    # guard handles it instead (checkpoint, stop, the next job resumes: squall.training.walltime).
    if SLURMEnvironment.detect():
        plugins.append(SLURMEnvironment(auto_requeue=False))
    return plugins


def train_from_file(
    resolved_path: str | Path,
    allow_lineage_mismatch: bool = False,
    resume: str | None = None,
    fork: bool = False,
) -> Path:
    return train(read_resolved(resolved_path), allow_lineage_mismatch, resume, fork)
