"""Rollout curriculum: how many autoregressive steps each training sample is rolled out for.

Starts at `start`, grows by `increment` every `every_n_epochs` epochs (or `every_n_steps`
optimiser steps), up to `maximum`. The value is a function of the epoch and step, so resuming
from a checkpoint continues the curriculum exactly; the checkpoint also records it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RolloutCurriculum:
    start: int = 1
    maximum: int = 1
    increment: int = 1
    every_n_epochs: int | None = 1
    every_n_steps: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.start <= self.maximum:
            raise ValueError(
                f"rollout start {self.start} must be between 1 and the maximum {self.maximum}"
            )

    def at(self, epoch: int, step: int) -> int:
        if self.every_n_steps:
            stage = step // self.every_n_steps
        elif self.every_n_epochs:
            stage = epoch // self.every_n_epochs
        else:
            stage = 0
        return min(self.maximum, self.start + stage * self.increment)
