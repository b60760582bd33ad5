"""Imputers: fill NaN in the inputs (physical units) so the network sees finite values.

Config: a list of {"method": ..., "variables": [...]} with method one of
  mean | minimum | maximum   the variable's statistic
  constant                   "value": a number
  variable                   "source": another variable, read at the same time and grid point
The NaN mask is kept by the caller (Preprocessor.nan_mask) for the loss and to put the NaNs
back on the outputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from squall.models.normalizer import variable_entries

IMPUTERS = ("mean", "minimum", "maximum", "constant", "variable")


class Imputer(nn.Module):
    def __init__(
        self,
        variables: Sequence[str],
        config: Sequence[Mapping[str, Any]] | None,
        statistics: Mapping[str, Sequence[float]],
    ) -> None:
        super().__init__()
        index = {name: i for i, name in enumerate(variables)}
        fill_value = torch.full((len(variables),), float("nan"))
        source = torch.full((len(variables),), -1, dtype=torch.long)
        for method, entry, name in variable_entries("imputer", IMPUTERS, variables, config):
            i = index[name]
            if method == "constant":
                if "value" not in entry:
                    raise ValueError("the constant imputer needs a 'value'.")
                fill_value[i] = float(entry["value"])
            elif method == "variable":
                if entry.get("source") not in index:
                    raise ValueError(
                        f"the variable imputer for {name!r} needs a 'source' among {variables}."
                    )
                source[i] = index[entry["source"]]
            else:
                if method not in statistics:
                    raise ValueError(f"the {method!r} imputer needs {method} statistics.")
                fill_value[i] = float(statistics[method][i])
        self.active = bool(torch.isfinite(fill_value).any() or (source >= 0).any())
        self.register_buffer("fill_value", fill_value, persistent=False)
        self.register_buffer("source", source, persistent=False)
        self.has_variable_sources = bool((source >= 0).any())

    def impute(self, x: torch.Tensor, columns: torch.Tensor | None = None) -> torch.Tensor:
        """x (..., variables) physical with NaNs -> NaNs replaced where an imputer is set."""
        if not self.active:
            return x
        missing = torch.isnan(x)
        fill = self.fill_value if columns is None else self.fill_value[columns]
        out = torch.where(missing & ~torch.isnan(fill), fill.to(x.dtype), x)
        if self.has_variable_sources:
            if columns is not None:
                raise ValueError(
                    "a variable imputer reads another variable: normalise the full state "
                    "(all variables), not a subset of columns."
                )
            from_source = x[..., self.source.clamp_min(0)]
            use_source = missing & (self.source >= 0)
            out = torch.where(use_source, from_source, out)
        return out
