"""One pydantic schema for the whole training config: typos and bad values fail before any work."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from squall.data.dates import frequency_to_string, frequency_to_timedelta


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(Strict):
    frequency: str = "6h"
    timestep: str = "6h"
    forcing: list[str] = []
    diagnostic: list[str] = []
    drop: list[str] = []
    # made on the fly by the model; names are checked by the pre-flight against the model's list
    computed_forcings: list[str] = []

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


class InputConfig(Strict):
    dataset: str
    graph: str
    statistics: str


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


class TaskConfig(Strict):
    name: Literal["forecaster"] = "forecaster"
    input_steps: int = Field(2, ge=1)
    rollout: RolloutConfig = RolloutConfig()
    validation_rollout: int = Field(1, ge=1)  # steps scored in validation

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
    name: Literal["mse", "rmse", "mae", "huber", "logcosh", "combined"] = "mse"
    scalers: list[str] = ["*"]  # '*' all of training.scalers, '!name' to leave one out
    ignore_nans: bool = False
    delta: float | None = Field(None, gt=0)  # huber only
    losses: list[LossConfig] = []  # combined only
    weights: list[float] = []  # combined only

    def as_settings(self) -> dict[str, Any]:
        """The dict squall.training.losses.build_loss takes."""
        if self.name == "combined":
            return {
                "name": "combined",
                "weights": self.weights or [1.0] * len(self.losses),
                "losses": [loss.as_settings() for loss in self.losses],
            }
        settings = {"name": self.name, "scalers": self.scalers, "ignore_nans": self.ignore_nans}
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
    checkpoints: CheckpointConfig = CheckpointConfig()
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig()
    ema_decay: float | None = Field(None, gt=0, lt=1)  # keep an EMA of the weights; export it
    time_limit_minutes: float | None = Field(None, gt=0)  # checkpoint and stop before a wall time
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
