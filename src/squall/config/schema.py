"""One pydantic schema for the whole training config: typos and bad values fail before any work."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from squall.config.multi_dataset import check_datasets
from squall.data.dates import frequency_to_string, frequency_to_timedelta

ENSEMBLE_LOSSES = ("crps", "fair_crps", "almost_fair_crps", "energy")  # training.loss kinds


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


DATASET_NAME = r"^[a-z][a-z0-9_]*$"  # a graph node set and a metric key: no dots or slashes


class DatasetRoles(Strict):
    """One dataset of a multi-dataset run (data.datasets.<name>). role input: every variable is
    forcing (e.g. the coarse grid of a downscaler); output: every variable is a target (the
    fine grid); both: prognostic, with `forcing`/`diagnostic` as for a single dataset."""

    role: Literal["input", "output", "both"] = "both"
    forcing: list[str] = []
    diagnostic: list[str] = []
    drop: list[str] = []
    loss_weight: float = Field(1.0, ge=0)  # this dataset's loss counts this much in the sum

    @model_validator(mode="after")
    def _lists_need_both(self) -> DatasetRoles:
        if self.role != "both" and (self.forcing or self.diagnostic):
            kind = "forcing" if self.role == "input" else "as targets"
            raise ValueError(
                f"forcing/diagnostic lists apply to role 'both'; a dataset with role "
                f"{self.role!r} has all its variables {kind}"
            )
        return self


class DataConfig(Strict):
    frequency: str = "6h"
    timestep: str = "6h"
    forcing: list[str] = []
    diagnostic: list[str] = []
    drop: list[str] = []
    # made on the fly by the model; names are checked by the pre-flight against the model's list
    computed_forcings: list[str] = []
    # several datasets at once (with system.input.datasets): name -> roles and loss weight
    datasets: dict[str, DatasetRoles] = {}

    @field_validator("frequency")
    @classmethod
    def _is_duration(cls, value: str) -> str:
        frequency_to_timedelta(value)
        return value

    # Field validators (not a model validator) so that the error names the exact key.
    @field_validator("timestep")
    @classmethod
    def _multiple_of_frequency(cls, value: str, info: ValidationInfo) -> str:
        step = frequency_to_timedelta(value)
        if "frequency" in info.data:
            frequency = frequency_to_timedelta(info.data["frequency"])
            if step % frequency or step < frequency:
                raise ValueError(
                    f"not a multiple of data.frequency={info.data['frequency']}: pick a "
                    f"timestep such as {frequency_to_string(frequency)} or "
                    f"{frequency_to_string(frequency * 2)}"
                )
        return value

    @field_validator("diagnostic")
    @classmethod
    def _not_also_forcing(cls, value: list[str], info: ValidationInfo) -> list[str]:
        overlap = sorted(set(value) & set(info.data.get("forcing", [])))
        if overlap:
            raise ValueError(f"{overlap} cannot be both forcing (input only) and diagnostic")
        return value


class Window(Strict):
    start: str
    end: str

    @field_validator("start", "end", mode="before")
    @classmethod
    def _as_text(cls, value: object) -> str | None:
        # YAML turns 1996-01-05 into a date; keep the text form the user wrote.
        if value is None:
            return None
        return value.isoformat() if isinstance(value, dt.date) else str(value)


class OptionalWindow(Window):
    start: str | None = None
    end: str | None = None


class BatchSizes(Strict):
    training: int = Field(ge=1)
    validation: int = Field(ge=1)


class LoaderWorkers(Strict):
    training: int = Field(ge=0)
    validation: int = Field(ge=0)


class DataloaderConfig(Strict):
    batch_size: BatchSizes = BatchSizes(training=4, validation=8)
    num_workers: LoaderWorkers = LoaderWorkers(training=0, validation=0)
    training: Window
    validation: Window
    test: OptionalWindow = OptionalWindow()  # evaluation; statistics must not overlap it


class MlflowConfig(Strict):
    enabled: bool = True
    tracking_uri: str = "sqlite:///results/mlflow.db"
    artifact_location: str = "results/mlartifacts"
    experiment_name: str = "squall"
    run_name: str | None = None


class PlotsConfig(Strict):
    enabled: bool = True
    every_n_epochs: int = Field(5, ge=1)  # a validation sample map
    timeout_seconds: float = Field(60.0, ge=0)  # the end of training waits no longer


class DiagnosticsConfig(Strict):
    log_every_n_steps: int = Field(5, ge=1)
    mlflow: MlflowConfig = MlflowConfig()
    plots: PlotsConfig = PlotsConfig()
    profiler: bool = True  # profile.json: time per phase, samples/s, peak memory


class LayerKernelsConfig(Strict):
    """Each role is a `{_target_: class, **kwargs}` dict; the allowlist (torch.nn.*,
    squall.models.*) is checked when the model is built."""

    norm: dict[str, Any] | None = None
    linear: dict[str, Any] | None = None
    activation: dict[str, Any] | None = None
    mlp: dict[str, Any] | None = None

    @field_validator("norm", "linear", "activation", "mlp")
    @classmethod
    def _has_target(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and not isinstance(value.get("_target_"), str):
            raise ValueError(f"a layer kernel needs a _target_ naming a class, got {value}")
        return value


class GradientCheckpointingConfig(Strict):
    encoder: bool = False
    processor: bool = False
    decoder: bool = False


class RemapperEntry(Strict):
    method: Literal["log1p", "sqrt", "boxcox", "arcsinh"]
    variables: list[str]
    lmbda: float = 0.0  # boxcox only


class ImputerEntry(Strict):
    method: Literal["mean", "minimum", "maximum", "constant", "variable"]
    variables: list[str]
    value: float | None = None  # constant
    source: str | None = None  # variable


class PreprocessingConfig(Strict):
    # {"default": "mean-std", "min-max": [tp], "none": [...]}; methods: mean-std std min-max max
    # none
    normaliser: dict[str, str | list[str]] = {"default": "mean-std"}
    remapper: list[RemapperEntry] = []
    imputer: list[ImputerEntry] = []


class BoundingEntry(Strict):
    kind: Literal["relu"] = "relu"
    variables: list[str]


class ModelConfig(Strict):
    processor: Literal["gnn", "graphtransformer", "transformer"] = "gnn"
    mapper: Literal["gnn", "graphtransformer"] = "gnn"
    hidden_channels: int = Field(64, ge=1)
    processor_layers: int = Field(4, ge=0)
    mlp_hidden_layers: int = Field(1, ge=1)
    # width of the processor/mapper blocks' MLP hidden layers / hidden_channels (None: GNN 1,
    # graph transformer and transformer 2); e.g. to match another model's parameter count
    mlp_hidden_ratio: float | None = Field(None, gt=0)
    # width of the learned edge latents of the processor and mappers (None: hidden_channels).
    # Narrow latents (anemoi's graph transformer projects 12 edge features per layer) cut the
    # per-edge matrix work and memory traffic, the bulk of a step on large meshes
    edge_latent_channels: int | None = Field(None, ge=1)
    activation: str = "SiLU"
    num_heads: int = Field(4, ge=1)  # graph transformer and transformer
    window_size: int = Field(64, ge=2)  # transformer: nodes within window_size // 2 either side
    num_chunks: int = Field(1, ge=1)  # mappers process their targets in this many groups
    trainable_node_channels: int = Field(8, ge=0)
    trainable_edge_channels: int = Field(0, ge=0)
    noise_channels: int = Field(0, ge=0)  # > 0: ensemble variant (noise in conditional norms)
    hierarchy_levels: int = Field(1, ge=1)  # > 1: hierarchical (hidden, hidden_2, ...)
    layer_kernels: LayerKernelsConfig = LayerKernelsConfig()
    gradient_checkpointing: GradientCheckpointingConfig = GradientCheckpointingConfig()
    preprocessing: PreprocessingConfig = PreprocessingConfig()
    bounding: list[BoundingEntry] = []

    @field_validator("gradient_checkpointing", mode="before")
    @classmethod
    def _all_or_per_component(cls, value: object) -> object:
        if isinstance(value, bool):  # true: checkpoint encoder, processor and decoder
            return {"encoder": value, "processor": value, "decoder": value}
        return value

    @model_validator(mode="after")
    def _heads_divide_channels(self) -> ModelConfig:
        attention = self.processor != "gnn" or self.mapper != "gnn"
        if attention and self.hidden_channels % self.num_heads:
            raise ValueError(
                f"model.hidden_channels={self.hidden_channels} is not divisible by "
                f"model.num_heads={self.num_heads}; pick a head count that divides it"
            )
        return self


class HardwareConfig(Strict):
    accelerator: Literal["cpu", "gpu", "auto"] = "auto"
    devices: int = Field(1, ge=1)
    num_nodes: int = Field(1, ge=1)
    precision: Literal["32-true", "bf16-mixed", "16-mixed", "32"] = "32-true"
    # > 1: model sharding, each model replica's grid split over this many ranks
    num_gpus_per_model: int = Field(1, ge=1)
    # how the grid shards are cut: equal point counts, or equal incoming edges (stretched or
    # limited-area meshes, whose nodes have uneven degrees)
    shard_balance: Literal["points", "edges"] = "points"
    # > 1: ensemble groups, the members of an initial condition spread over this many ranks
    # (model shards included: a multiple of num_gpus_per_model)
    num_gpus_per_ensemble: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _model_groups_fill_the_world(self) -> HardwareConfig:
        world = self.devices * self.num_nodes
        if world % self.num_gpus_per_model:
            raise ValueError(
                f"system.hardware.num_gpus_per_model={self.num_gpus_per_model} does not divide "
                f"the {world} processes (devices={self.devices} x num_nodes={self.num_nodes}); "
                "pick a divisor of devices x num_nodes"
            )
        ensemble = self.num_gpus_per_ensemble
        if ensemble > 1 and (world % ensemble or ensemble % self.num_gpus_per_model):
            raise ValueError(
                f"system.hardware.num_gpus_per_ensemble={ensemble} must divide the {world} "
                "processes (devices x num_nodes) and be a multiple of num_gpus_per_model="
                f"{self.num_gpus_per_model}; pick such a value, or 1"
            )
        return self


class DatasetInput(Strict):
    # a store path, or an open_dataset mapping such as {dataset: path, thinning: 2}
    dataset: str | dict[str, Any]
    statistics: str


class InputConfig(Strict):
    dataset: str | None = None
    graph: str
    statistics: str | None = None
    # several datasets at once, instead of dataset and statistics: name -> store and statistics
    datasets: dict[str, DatasetInput] = {}

    @model_validator(mode="after")
    def _one_form(self) -> InputConfig:
        if self.datasets:
            if self.dataset is not None or self.statistics is not None:
                raise ValueError(
                    "give system.input.dataset and statistics (one dataset) or "
                    "system.input.datasets (several), not both: set the first two to null"
                )
            bad = [name for name in self.datasets if not re.match(DATASET_NAME, name)]
            bad += [name for name in self.datasets if name.startswith("hidden")]
            if bad:
                raise ValueError(
                    f"dataset names {bad} must be lower-case identifiers ({DATASET_NAME}) that do "
                    "not start with 'hidden' (they name the graph's node sets)"
                )
            if len(self.datasets) < 2:
                raise ValueError("system.input.datasets needs at least two datasets")
        elif self.dataset is None or self.statistics is None:
            raise ValueError(
                "system.input.dataset and system.input.statistics must be set (or "
                "system.input.datasets, for several datasets at once)"
            )
        return self


class OutputConfig(Strict):
    root: str


class SystemConfig(Strict):
    hardware: HardwareConfig = HardwareConfig()
    input: InputConfig
    output: OutputConfig


class RolloutConfig(Strict):
    """Autoregressive steps per training sample: start, + increment every N epochs (or N
    optimiser steps), up to maximum."""

    start: int = Field(1, ge=1)
    maximum: int = Field(1, ge=1)
    increment: int = Field(1, ge=0)
    every_n_epochs: int | None = Field(1, ge=1)
    every_n_steps: int | None = Field(None, ge=1)

    @field_validator("maximum")
    @classmethod
    def _at_least_start(cls, value: int, info: ValidationInfo) -> int:
        if "start" in info.data and value < info.data["start"]:
            raise ValueError(f"must be at least task.rollout.start={info.data['start']}")
        return value


class ExplicitTimes(Strict):
    """Interpolator: input and target dates as offsets from the first input, in steps of
    data.frequency (e.g. input [0, 6], target [1, 2, 3, 4, 5] on an hourly dataset)."""

    input: list[int] = [0, 6]
    target: list[int] = [1, 2, 3, 4, 5]

    @model_validator(mode="after")
    def _targets_between_inputs(self) -> ExplicitTimes:
        if len(self.input) != 2 or self.input[0] >= self.input[1]:
            raise ValueError(
                f"task.explicit_times.input must be two increasing offsets, got {self.input}"
            )
        outside = [t for t in self.target if not self.input[0] <= t <= self.input[1]]
        if not self.target or outside:
            raise ValueError(
                f"task.explicit_times.target must be non-empty offsets within the inputs "
                f"{self.input}; {outside} lie outside"
            )
        return self


class BoundaryConfig(Strict):
    """Limited-area model: points outside the domain (data nodes where the graph attribute
    `domain_mask` is False) and a ring of `ring_width` grid rows and columns at the edge of the
    (lat, lon) field are forced to the true state during rollout and add no loss.
    `target_forcing`: the network also reads the true state of the forced points at the time it
    predicts (prognostic variables, zeros inside, and a 0/1 forced-point channel)."""

    ring_width: int = Field(0, ge=0)
    domain_mask: str | None = None  # e.g. cutout_mask of an anemoi cut-out dataset
    target_forcing: bool = False


class EnsembleConfig(Strict):
    """ensemble_forecaster: members per initial condition, made by the ensemble model variant
    (model.noise_channels > 0) and scored together by an ensemble loss (training.loss)."""

    members: int = Field(4, ge=1)


class DiffusionConfig(Strict):
    """diffusion_forecaster: EDM denoising of the next state (or its tendency), conditioned on
    the input states; the Heun sampler makes forecasts. Sigmas in normalised units."""

    prediction: Literal["state", "tendency"] = "tendency"
    sigma_data: float = Field(1.0, gt=0)
    noise_distribution: Literal["lognormal", "karras"] = "lognormal"  # training sigmas
    p_mean: float = -1.2  # lognormal: log sigma ~ N(p_mean, p_std^2)
    p_std: float = Field(1.2, gt=0)
    sigma_min: float = Field(0.02, gt=0)  # karras training sigmas and the sampler
    sigma_max: float = Field(80.0, gt=0)
    rho: float = Field(7.0, gt=0)
    sampler_steps: int = Field(20, ge=1)  # Heun steps per forecast step

    @field_validator("sigma_max")
    @classmethod
    def _above_minimum(cls, value: float, info: ValidationInfo) -> float:
        if "sigma_min" in info.data and value <= info.data["sigma_min"]:
            raise ValueError(f"must exceed task.diffusion.sigma_min={info.data['sigma_min']}")
        return value


class TaskConfig(Strict):
    # forecaster: k inputs, r steps ahead; interpolator: targets between two inputs
    # (explicit_times); autoencoder: each state reconstructed through the hidden mesh.
    # downscaler: input datasets -> output datasets at the same time (system.input.datasets)
    # ensemble_forecaster: a forecaster trained with an ensemble loss (task.ensemble);
    # diffusion_forecaster: one step ahead by EDM denoising (task.diffusion)
    name: Literal[
        "forecaster",
        "interpolator",
        "autoencoder",
        "downscaler",
        "ensemble_forecaster",
        "diffusion_forecaster",
    ] = "forecaster"
    input_steps: int = Field(2, ge=1)
    rollout: RolloutConfig = RolloutConfig()
    validation_rollout: int = Field(1, ge=1)  # steps scored in validation
    explicit_times: ExplicitTimes = ExplicitTimes()  # interpolator only
    boundary: BoundaryConfig | None = None  # forecaster only: a limited-area model
    ensemble: EnsembleConfig = EnsembleConfig()  # ensemble_forecaster only
    diffusion: DiffusionConfig = DiffusionConfig()  # diffusion_forecaster only

    @model_validator(mode="after")
    def _task_settings_fit(self) -> TaskConfig:
        if self.name == "interpolator" and self.input_steps != 2:
            raise ValueError("task.input_steps must be 2 for the interpolator (its two inputs)")
        if self.name == "autoencoder" and self.input_steps != 1:
            raise ValueError("task.input_steps must be 1 for the autoencoder (one state)")
        if self.boundary is not None and self.name != "forecaster":
            raise ValueError(f"task.boundary applies to the forecaster, not to {self.name}")
        return self

    @field_validator("rollout", mode="before")
    @classmethod
    def _fixed_rollout(cls, value: Any) -> Any:
        # `rollout: 3` is a fixed rollout of 3 steps
        return {"start": value, "maximum": value} if isinstance(value, int) else value


class OptimizerConfig(Strict):
    name: Literal["adamw", "ademamix", "zero_adamw"] = "adamw"
    lr: float = Field(1e-3, gt=0)  # per replica; see scale_with_replicas
    scale_with_replicas: bool = False  # lr x number of data-parallel replicas
    weight_decay: float = Field(1e-4, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    beta3: float = Field(0.9999, gt=0, lt=1)  # ademamix: the slow momentum
    alpha: float = Field(5.0, ge=0)  # ademamix: weight of the slow momentum
    ademamix_warmup: int = Field(0, ge=0)  # ademamix: steps to ramp alpha and beta3 up


class LrScheduleConfig(Strict):
    warmup_steps: int = Field(20, ge=0)
    min_lr: float = Field(1e-5, ge=0)


class CheckpointConfig(Strict):
    """Besides best.ckpt (lowest validation loss) and last.ckpt (every epoch)."""

    every_n_epochs: int | None = Field(None, ge=1)
    every_n_steps: int | None = Field(None, ge=1)
    every_n_minutes: float | None = Field(None, gt=0)


class EarlyStoppingConfig(Strict):
    enabled: bool = False
    patience: int = Field(5, ge=1)  # validation rounds without improvement
    min_delta: float = Field(0.0, ge=0)


class InitialisationConfig(Strict):
    """Start from an earlier checkpoint's weights (a new run: fresh optimiser and schedule).
    To continue a run exactly, use `squall train --resume` instead."""

    checkpoint: str | None = None
    mode: Literal["warm_start", "transfer"] = "warm_start"  # transfer: load what fits
    freeze: list[str] = []  # submodules to keep fixed, e.g. [network.encoder]
    allow_variable_remap: bool = False  # accept a checkpoint with other variables (transfer)


class LossConfig(Strict):
    name: Literal[
        "mse",
        "rmse",
        "mae",
        "huber",
        "logcosh",
        "combined",
        # ensemble losses (task ensemble_forecaster)
        "crps",
        "fair_crps",
        "almost_fair_crps",
        "energy",
    ] = "mse"
    scalers: list[str] = ["*"]  # '*' all of training.scalers, '!name' to leave one out
    ignore_nans: bool = False
    delta: float | None = Field(None, gt=0)  # huber only
    losses: list[LossConfig] = []  # combined only
    weights: list[float] = []  # combined only
    alpha: float | None = Field(None, ge=0, le=1)  # almost_fair_crps only (default 0.95)

    def as_settings(self) -> dict[str, Any]:
        """The dict squall.training.losses.build_loss takes."""
        if self.name == "combined":
            return {
                "name": "combined",
                "weights": self.weights or [1.0] * len(self.losses),
                "losses": [loss.as_settings() for loss in self.losses],
            }
        settings = {"name": self.name, "scalers": self.scalers, "ignore_nans": self.ignore_nans}
        if self.name in ENSEMBLE_LOSSES:
            return {"name": self.name, "scalers": self.scalers, "alpha": self.alpha}
        return settings | ({"delta": self.delta} if self.delta is not None else {})


class TrainingConfig(Strict):
    seed: int = 42
    # Deterministic kernels where torch has them; ops without one (scatter-adds on CUDA) warn.
    deterministic: bool = True
    max_epochs: int = Field(40, ge=1)
    limit_train_batches: int | None = Field(None, ge=1)
    limit_val_batches: int | None = Field(None, ge=1)
    optimizer: OptimizerConfig = OptimizerConfig()
    lr_schedule: LrScheduleConfig = LrScheduleConfig()
    gradient_clip_val: float | None = Field(1.0, gt=0)
    accumulate_grad_batches: int = Field(1, ge=1)
    # Replay forward and backward from a CUDA graph (one GPU, forecaster task): the host no
    # longer launches ~3,000 kernels per step (1.5x faster on an H100-class GPU, issue 10)
    cuda_graph: bool = False
    checkpoints: CheckpointConfig = CheckpointConfig()
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig()
    ema_decay: float | None = Field(None, gt=0, lt=1)  # keep an EMA of the weights; export it
    time_limit_minutes: float | None = Field(None, gt=0)  # checkpoint and stop before a wall time
    # Checkpoint and stop on this signal (Slurm: --signal=USR1@300); null: no handler.
    walltime_signal: Literal["SIGUSR1", "SIGUSR2"] | None = "SIGUSR1"
    initialisation: InitialisationConfig = InitialisationConfig()
    loss: LossConfig = LossConfig()
    # name -> settings; see squall.training.scalers. A loss selects them by name.
    scalers: dict[str, dict[str, Any]] = {"area": {"node_attribute": "area_weight"}}

    @field_validator("loss", mode="before")
    @classmethod
    def _loss_shorthand(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value  # `loss: mae` for short


class SquallConfig(Strict):
    data: DataConfig = DataConfig()
    dataloader: DataloaderConfig
    diagnostics: DiagnosticsConfig = DiagnosticsConfig()
    model: ModelConfig = ModelConfig()
    system: SystemConfig
    task: TaskConfig = TaskConfig()
    training: TrainingConfig = TrainingConfig()
    # Written by `squall config validate`: content hashes of the inputs this config was checked on.
    lineage: dict[str, str] = {}

    @model_validator(mode="after")
    def _datasets_fit(self) -> SquallConfig:
        check_datasets(self)
        return self

    @model_validator(mode="after")
    def _method_fits(self) -> SquallConfig:
        """The ensemble and diffusion methods need their model variant and loss kind."""
        task, loss = self.task.name, self.training.loss.name
        ensemble_loss = loss in ENSEMBLE_LOSSES
        if task == "ensemble_forecaster":
            if not ensemble_loss:
                raise ValueError(
                    f"training.loss={loss!r}: the ensemble_forecaster needs an ensemble loss, "
                    f"one of {list(ENSEMBLE_LOSSES)}"
                )
            if loss != "crps" and self.task.ensemble.members < 2:
                raise ValueError(f"training.loss={loss!r} needs task.ensemble.members >= 2")
        elif ensemble_loss:
            raise ValueError(
                f"training.loss={loss!r} scores an ensemble: set task.name=ensemble_forecaster"
            )
        if task in ("ensemble_forecaster", "diffusion_forecaster") and not (
            self.model.noise_channels
        ):
            raise ValueError(
                f"task {task} needs model.noise_channels > 0 (the conditional layer norms carry "
                "the ensemble noise or the diffusion noise level), e.g. model.noise_channels=16"
            )
        if task == "diffusion_forecaster" and loss != "mse":
            raise ValueError(
                f"training.loss={loss!r}: the diffusion_forecaster's loss is the noise-level "
                "weighted mse; set training.loss=mse"
            )
        hardware = self.system.hardware
        parts = max(1, hardware.num_gpus_per_ensemble // hardware.num_gpus_per_model)
        if parts > 1 and task != "ensemble_forecaster":
            raise ValueError(
                "system.hardware.num_gpus_per_ensemble > 1 spreads the members of an ensemble "
                f"forecaster over ranks, but task.name={task!r}; set it to 1"
            )
        if parts > 1 and self.task.ensemble.members % parts:
            raise ValueError(
                f"task.ensemble.members={self.task.ensemble.members} does not split over the "
                f"{parts} member parts of an ensemble group (num_gpus_per_ensemble / "
                f"num_gpus_per_model); pick a multiple of {parts}"
            )
        if task == "diffusion_forecaster" and self.task.rollout.maximum > 1:
            raise ValueError("the diffusion_forecaster trains on single steps: task.rollout=1")
        return self

    @model_validator(mode="after")
    def _cuda_graph_fits(self) -> SquallConfig:
        """training.cuda_graph: the deterministic forecaster on one GPU, one batch per step, in
        bf16-mixed or fp32."""
        if not self.training.cuda_graph:
            return self
        if self.task.name != "forecaster" or self.system.input.datasets:
            task = "several datasets" if self.system.input.datasets else repr(self.task.name)
            raise ValueError(
                "training.cuda_graph replays the single-dataset forecaster's training step; "
                f"a task of {task} is not supported with it: set training.cuda_graph=false"
            )
        if self.training.accumulate_grad_batches > 1:
            raise ValueError(
                "training.cuda_graph steps the optimiser after every batch: set "
                "training.accumulate_grad_batches=1 (or a larger batch size instead)"
            )
        hardware = self.system.hardware
        if hardware.devices * hardware.num_nodes > 1:
            raise ValueError(
                "training.cuda_graph trains on one GPU: set system.hardware.devices=1 and "
                "num_nodes=1, or training.cuda_graph=false"
            )
        if hardware.precision == "16-mixed":  # its GradScaler would have to scale in the graph
            raise ValueError(
                "training.cuda_graph does not scale the loss that fp16 needs: set "
                "system.hardware.precision=bf16-mixed (or 32-true), or training.cuda_graph=false"
            )
        if self.training.optimizer.name == "zero_adamw":
            raise ValueError(
                "training.cuda_graph trains on one GPU, and optimizer zero_adamw shards its "
                "state over several: set training.optimizer.name=adamw"
            )
        return self
