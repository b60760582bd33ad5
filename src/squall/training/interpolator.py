"""The interpolator task: the states between two inputs (temporal downscaling).

A sample holds the two input states (at explicit_times.input) followed by the targets (at
explicit_times.target). The model sees both inputs, the computed forcings at the target time and
how far the target lies between the inputs, and predicts its departure from the linear
interpolation in time: an untrained model is linear interpolation, and training only has to
learn what linear interpolation misses (the diurnal cycle, moving features).
"""

from __future__ import annotations

from typing import Any

import torch

from squall.models.interface import ForecastModel
from squall.training.forecaster import Forecaster


class Interpolator(Forecaster):
    """Scores every target time; validation metrics are named by the target's offset in hours
    from the first input (val/rmse/2t/3h: three hours after the first input)."""

    def __init__(
        self,
        model: ForecastModel,
        config: dict[str, Any],
        statistics: dict[str, list[float]],
        loss: torch.nn.Module,
        metric_weights: torch.Tensor,
        frequency_seconds: int,
    ) -> None:
        times = config["task"]["explicit_times"]
        first, last = times["input"]
        self.target_hours = [(t - first) * frequency_seconds // 3600 for t in times["target"]]
        # All targets are scored in validation: "validation_rollout" counts them.
        config = {**config, "task": {**config["task"], "validation_rollout": len(times["target"])}}
        super().__init__(model, config, statistics, loss, metric_weights)
        fractions = [(t - first) / (last - first) for t in times["target"]]
        self.register_buffer("fractions", torch.tensor(fractions, dtype=torch.float32), False)

    def _metric_name(self, variable: str, lead: int) -> str:
        return f"{variable}__{self.target_hours[lead - 1]}h"

    def _roll_out(
        self, batch: dict[str, torch.Tensor], steps: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalised predictions and targets (B, targets, E, G, V_out) and the mask of target
        points missing in the data. `steps` is unused: every target is predicted at once."""
        data = self.model.normalizer.normalise(batch["data"])  # (B, 2 + targets, E, G, V)
        targets = len(self.fractions)
        if data.shape[1] != 2 + targets:
            raise ValueError(
                f"an interpolator batch holds {data.shape[1]} times; it needs its 2 inputs and "
                f"{targets} targets: build the datamodule with the task's offsets"
            )
        size = data.shape[0]
        # One network call for all (sample, target) pairs: the targets go into the batch.
        inputs = data[:, None, :2].expand(size, targets, 2, *data.shape[2:]).flatten(0, 1)
        fraction = self.fractions.repeat(size)
        valid_time = batch["time"][:, 2:].flatten()
        prediction = self.model.forward_normalised(inputs, valid_time, fraction)
        prediction = prediction.unflatten(0, (size, targets))
        columns = self.model.output_columns
        skip = self.model.normalizer.nan_mask(batch["data"][:, 2:][..., columns])
        return prediction, data[:, 2:][..., columns], skip
