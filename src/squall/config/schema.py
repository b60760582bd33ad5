"""One pydantic schema for the whole training config: typos and bad values fail before any work."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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

    @field_validator("frequency", "timestep")
    @classmethod
    def _is_duration(cls, value: str) -> str:
        frequency_to_timedelta(value)
        return value

    @model_validator(mode="after")
    def _timestep_multiple_of_frequency(self) -> DataConfig:
        step, freq = frequency_to_timedelta(self.timestep), frequency_to_timedelta(self.frequency)
        if step % freq:
            raise ValueError(
                f"data.timestep={self.timestep} is not a multiple of data.frequency="
                f"{self.frequency}: pick a timestep such as {frequency_to_string(freq * 2)}"
            )
        overlap = set(self.forcing) & set(self.diagnostic)
        if overlap:
            raise ValueError(f"variables {sorted(overlap)} cannot be both forcing and diagnostic")
        return self


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


class PerStage(Strict):
    training: int
    validation: int


class DataloaderConfig(Strict):
    batch_size: PerStage = PerStage(training=4, validation=8)
    num_workers: PerStage = PerStage(training=0, validation=0)
    training: Window
    validation: Window
    test: OptionalWindow = OptionalWindow()  # evaluation; statistics must not overlap it


class MlflowConfig(Strict):
    enabled: bool = True
    tracking_uri: str = "sqlite:///results/mlflow.db"
    artifact_location: str = "results/mlartifacts"
    experiment_name: str = "squall"
    run_name: str | None = None


class DiagnosticsConfig(Strict):
    log_every_n_steps: int = Field(5, ge=1)
    mlflow: MlflowConfig = MlflowConfig()


class ModelConfig(Strict):
    hidden_channels: int = Field(64, ge=1)
    processor_layers: int = Field(4, ge=0)
    mlp_hidden_layers: int = Field(1, ge=0)
    activation: str = "SiLU"
    trainable_node_channels: int = Field(8, ge=0)
    gradient_checkpointing: bool = False


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


class TaskConfig(Strict):
    name: Literal["forecaster"] = "forecaster"
    input_steps: int = Field(2, ge=1)
    rollout: int = Field(1, ge=1)


class OptimizerConfig(Strict):
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)


class LrScheduleConfig(Strict):
    warmup_steps: int = Field(20, ge=0)
    min_lr: float = Field(1e-5, ge=0)


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
    loss: Literal["mse"] = "mse"


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
