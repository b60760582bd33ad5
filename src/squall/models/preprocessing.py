"""The model's preprocessing chain, one object: physical -> impute -> remap -> normalise, and
back. ForecastModel exposes it as `.normalizer`, so callers keep calling
normalise(x, columns) / denormalise(x, columns)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from squall.models.imputer import Imputer
from squall.models.normalizer import Normalizer, normaliser_per_variable
from squall.models.remapper import Remapper, remap_scalar, remapper_per_variable


def _remapped_statistics(
    variables: Sequence[str],
    statistics: Mapping[str, Sequence[float]],
    remaps: Mapping[str, tuple[str, float]],
    methods: Sequence[str],
) -> dict[str, list[float]]:
    """Statistics in remapped space: minimum and maximum map exactly (remappers increase);
    mean and stdev do not, so remapped variables must use min-max, max or none."""
    out = {key: list(values) for key, values in statistics.items()}
    for i, name in enumerate(variables):
        if name not in remaps:
            continue
        if methods[i] in ("mean-std", "std"):
            raise ValueError(
                f"variable {name!r} is remapped ({remaps[name][0]}) but normalised with "
                f"{methods[i]!r}: its mean and stdev are not known after remapping. Normalise it "
                "with min-max, max or none (preprocessing.normaliser)."
            )
        for key in ("minimum", "maximum"):
            if key in out:
                out[key][i] = remap_scalar(*remaps[name], out[key][i])
    return out


class Preprocessor(nn.Module):
    """`config` keys (all optional): normaliser ({"default": "mean-std", "min-max": [...]}),
    remapper ([{"method": "log1p", "variables": [...]}]), imputer ([{"method": "mean", ...}])."""

    def __init__(
        self,
        variables: Sequence[str],
        statistics: Mapping[str, Sequence[float]],
        config: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        config = dict(config or {})
        unknown = sorted(set(config) - {"normaliser", "remapper", "imputer"})
        if unknown:
            raise ValueError(
                f"unknown preprocessing keys {unknown}; use normaliser/remapper/imputer."
            )
        self.variables = list(variables)
        methods = normaliser_per_variable(variables, config.get("normaliser"))
        self.remaps = remapper_per_variable(variables, config.get("remapper"))
        self.imputer = Imputer(variables, config.get("imputer"), statistics)
        self.remapper = Remapper(variables, self.remaps)
        self.normalizer = Normalizer(
            methods, _remapped_statistics(variables, statistics, self.remaps, methods)
        )

    @property
    def scale(self) -> torch.Tensor:
        """Per-variable divisor of the normaliser (physical units per normalised unit, for
        variables that are not remapped)."""
        return self.normalizer.scale

    def normalise(self, x: torch.Tensor, columns: torch.Tensor | None = None) -> torch.Tensor:
        """Physical x (..., variables) -> normalised, NaNs imputed where an imputer is set."""
        x = self.imputer.impute(x, columns)
        return self.normalizer.normalise(self.remapper.remap(x, columns), columns)

    def denormalise(self, x: torch.Tensor, columns: torch.Tensor | None = None) -> torch.Tensor:
        return self.remapper.unmap(self.normalizer.denormalise(x, columns), columns)

    @staticmethod
    def nan_mask(x: torch.Tensor) -> torch.Tensor:
        """True where the physical x is missing: the loss should skip these points."""
        return torch.isnan(x)

    def normalised_value(self, value: float, column: int) -> float:
        """Where a physical value (e.g. 0 for a ReLU bound) lands in normalised space."""
        name = self.variables[column]
        if name in self.remaps:
            value = remap_scalar(*self.remaps[name], value)
        return (value - float(self.normalizer.offset[column])) / float(
            self.normalizer.scale[column]
        )
