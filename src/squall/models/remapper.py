"""Remappers: invertible per-variable transforms applied before normalisation, for skewed
variables such as precipitation. Each has an exact inverse on the transform's image.

  log1p: log(1 + x), x > -1            sqrt: sqrt(x), x >= 0 (negatives clamped to 0)
  boxcox: (x^l - 1) / l (log x for l = 0), x > 0          arcsinh: asinh(x), any x
All are increasing, so minimum and maximum statistics map through them exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from squall.models.normalizer import variable_entries

REMAPPERS = ("log1p", "sqrt", "boxcox", "arcsinh")


def _forward(method: str, x: torch.Tensor, lmbda: float) -> torch.Tensor:
    if method == "log1p":
        return torch.log1p(x)
    if method == "sqrt":
        return torch.sqrt(x.clamp_min(0))
    if method == "arcsinh":
        return torch.asinh(x)
    if lmbda == 0:
        return torch.log(x)
    return (x.pow(lmbda) - 1) / lmbda


def _inverse(method: str, y: torch.Tensor, lmbda: float) -> torch.Tensor:
    if method == "log1p":
        return torch.expm1(y)
    if method == "sqrt":
        return y.clamp_min(0).square()
    if method == "arcsinh":
        return torch.sinh(y)
    if lmbda == 0:
        return torch.exp(y)
    return (lmbda * y + 1).clamp_min(0).pow(1 / lmbda)


def remap_scalar(method: str, lmbda: float, value: float) -> float:
    """The remapped value of one number (for statistics and bounds)."""
    return float(_forward(method, torch.tensor(value, dtype=torch.float64), lmbda))


def remapper_per_variable(
    variables: Sequence[str], config: Sequence[Mapping[str, Any]] | None
) -> dict[str, tuple[str, float]]:
    """[{"method": "log1p", "variables": ["tp"]}, {"method": "boxcox", "lmbda": 0.5, ...}]
    -> {variable: (method, lmbda)}."""
    return {
        name: (method, float(entry.get("lmbda", 0.0)))
        for method, entry, name in variable_entries("remapper", REMAPPERS, variables, config)
    }


class Remapper(nn.Module):
    """Applies each variable's remapper on the last axis; other variables pass through."""

    def __init__(self, variables: Sequence[str], remaps: Mapping[str, tuple[str, float]]) -> None:
        super().__init__()
        self.groups = [  # (method, lmbda, column indices)
            (
                method,
                lmbda,
                [i for i, v in enumerate(variables) if remaps.get(v) == (method, lmbda)],
            )
            for method, lmbda in sorted(set(remaps.values()))
        ]

    def _transform(
        self, x: torch.Tensor, columns: torch.Tensor | None, inverse: bool
    ) -> torch.Tensor:
        if not self.groups:
            return x
        position = None if columns is None else {int(c): i for i, c in enumerate(columns)}
        out = x.clone()
        for method, lmbda, indices in self.groups:
            local = indices if position is None else [position[i] for i in indices if i in position]
            if not local:
                continue
            index = torch.tensor(local, device=x.device)
            values = x.index_select(-1, index)
            mapped = _inverse(method, values, lmbda) if inverse else _forward(method, values, lmbda)
            out = out.index_copy(-1, index, mapped)
        return out

    def remap(self, x: torch.Tensor, columns: torch.Tensor | None = None) -> torch.Tensor:
        return self._transform(x, columns, inverse=False)

    def unmap(self, x: torch.Tensor, columns: torch.Tensor | None = None) -> torch.Tensor:
        return self._transform(x, columns, inverse=True)
