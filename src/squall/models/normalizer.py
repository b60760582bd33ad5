"""Per-variable normalisation held in the model, so an exported model carries its own statistics.

Every method is an affine map (x - offset) / scale with per-variable buffers:
  mean-std: (x - mean) / stdev      std: x / stdev      min-max: (x - min) / (max - min)
  max: x / max                      none: x
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

NORMALISERS = ("mean-std", "std", "min-max", "max", "none")
# A variable constant over the statistics period (scale 0) is passed through shifted, not scaled.
_MIN_SCALE = 1e-12


def variable_entries(
    kind: str,
    methods: Sequence[str],
    variables: Sequence[str],
    config: Sequence[Mapping[str, Any]] | None,
) -> Iterator[tuple[str, Mapping[str, Any], str]]:
    """(method, entry, variable) of config entries [{"method": ..., "variables": [...]}, ...],
    checked: known methods, model variables, no variable twice."""
    seen: set[str] = set()
    for entry in config or []:
        method = entry.get("method")
        if method not in methods:
            raise ValueError(f"unknown {kind} {method!r}; choose one of {tuple(methods)}.")
        for name in entry.get("variables", []):
            if name not in variables:
                raise ValueError(f"{kind} {method!r} names {name!r}, not a model variable.")
            if name in seen:
                raise ValueError(f"variable {name!r} has two {kind}s; keep one.")
            seen.add(name)
            yield method, entry, name


def normaliser_per_variable(
    variables: Sequence[str], config: Mapping[str, object] | None
) -> list[str]:
    """{"default": "mean-std", "min-max": ["tp"], ...} -> one method per variable."""
    config = dict(config or {})
    default = config.pop("default", "mean-std")
    methods = dict.fromkeys(variables, default)
    for method, names in config.items():
        if method not in NORMALISERS:
            raise ValueError(f"unknown normaliser {method!r}; choose one of {NORMALISERS}.")
        for name in names:
            if name not in methods:
                raise ValueError(
                    f"normaliser {method!r} names {name!r}, which is not a model variable "
                    f"({list(variables)})."
                )
            methods[name] = method
    unknown = sorted(set(methods.values()) - set(NORMALISERS))
    if unknown:
        raise ValueError(f"unknown normaliser {unknown}; choose one of {NORMALISERS}.")
    return [methods[name] for name in variables]


def _offset_and_scale(method: str, stats: Mapping[str, float]) -> tuple[float, float]:
    if method == "mean-std":
        return stats["mean"], stats["stdev"]
    if method == "std":
        return 0.0, stats["stdev"]
    if method == "min-max":
        return stats["minimum"], stats["maximum"] - stats["minimum"]
    if method == "max":
        return 0.0, abs(stats["maximum"])
    return 0.0, 1.0


class Normalizer(nn.Module):
    """`methods` one per variable; `statistics` maps mean/stdev/minimum/maximum to per-variable
    lists (only those the methods need)."""

    def __init__(self, methods: Sequence[str], statistics: Mapping[str, Sequence[float]]) -> None:
        super().__init__()
        offsets, scales = [], []
        for i, method in enumerate(methods):
            needed = {
                "mean-std": ("mean", "stdev"),
                "std": ("stdev",),
                "min-max": ("minimum", "maximum"),
                "max": ("maximum",),
                "none": (),
            }[method]
            missing = [key for key in needed if key not in statistics]
            if missing:
                raise ValueError(
                    f"normaliser {method!r} needs statistics {missing}; recompute the statistics "
                    "file or pick another normaliser."
                )
            offset, scale = _offset_and_scale(method, {k: statistics[k][i] for k in needed})
            offsets.append(offset)
            scales.append(scale)
        scale_tensor = torch.as_tensor(scales, dtype=torch.float32)
        scale_tensor = torch.where(scale_tensor.abs() > _MIN_SCALE, scale_tensor, 1.0)
        self.methods = list(methods)
        self.register_buffer("offset", torch.as_tensor(offsets, dtype=torch.float32))
        self.register_buffer("scale", scale_tensor)

    def normalise(self, x: torch.Tensor, columns: torch.Tensor | None = None) -> torch.Tensor:
        """x (..., variables) -> normalised; `columns` picks a subset of the variables."""
        offset, scale = self._select(columns)
        return (x - offset) / scale

    def denormalise(self, x: torch.Tensor, columns: torch.Tensor | None = None) -> torch.Tensor:
        offset, scale = self._select(columns)
        return x * scale + offset

    def _select(self, columns: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if columns is None:
            return self.offset, self.scale
        return self.offset[columns], self.scale[columns]
