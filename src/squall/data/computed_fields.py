"""Computed forcings stored as dataset variables (`computed_forcings:` in a recipe).

The formulas are the model's own (squall.models.computed_forcings), so a variable written here
equals what a model computes on the fly: one implementation of each forcing.
"""

from __future__ import annotations

import numpy as np
import torch

from squall.models.computed_forcings import NAMES, computed_forcings


class ComputedForcingFields:
    """Reads like a recipe source: `read(date)` -> (variables, 1 member, points) float32."""

    def __init__(self, names: list[str], latitudes: np.ndarray, longitudes: np.ndarray) -> None:
        unknown = [name for name in names if name not in NAMES]
        if unknown:
            raise ValueError(
                f"recipe computed_forcings names {unknown}; squall computes {list(NAMES)}"
            )
        self.names = list(names)
        self.latitudes = torch.from_numpy(np.deg2rad(np.asarray(latitudes, np.float64)))
        self.longitudes = torch.from_numpy(np.deg2rad(np.asarray(longitudes, np.float64)))

    def read(self, date: np.datetime64) -> np.ndarray:
        seconds = torch.tensor([np.datetime64(date, "s").astype(np.int64)])
        values = computed_forcings(self.names, seconds, self.latitudes, self.longitudes)
        return values[0].T.numpy()[:, None, :].astype(np.float32)  # (variables, 1, points)

    def metadata(self) -> dict[str, dict]:
        return {
            name: {
                "units": "1",
                "long_name": f"{name} (computed by squall from date and coordinates)",
                "computed_forcing": True,
            }
            for name in self.names
        }
