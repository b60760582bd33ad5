"""Loss scalers: named weights over named tensor dimensions, multiplied into the loss.

Every loss works on (batch, time, ensemble, grid, variable) errors. A scaler weighs some of
these dimensions (e.g. `area` the grid, `variable_weights` the variables, `lead_time_decay`
the output times); a loss lists the scalers it uses by name: `'*'` selects all, `'!name'`
removes one. Grid and time scalers are normalised to sum 1 so that the loss is a weighted mean.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import torch

from squall.data.coordinates import in_box

DIMENSIONS = ("batch", "time", "ensemble", "grid", "variable")
_LEVEL = re.compile(r"^(?P<param>.+)_(?P<level>\d+)$")


@dataclass(frozen=True)
class Scaler:
    """`values` has one axis per name in `dims`, in the order of DIMENSIONS."""

    name: str
    dims: tuple[str, ...]
    values: torch.Tensor

    def broadcast(self) -> torch.Tensor:
        """The values as a 5-D tensor that broadcasts against (B, T, E, G, V)."""
        shape = [1] * len(DIMENSIONS)
        for dim, size in zip(self.dims, self.values.shape, strict=True):
            shape[DIMENSIONS.index(dim)] = size
        return self.values.reshape(shape)


def select_scalers(available: dict[str, Scaler], selection: list[str]) -> list[Scaler]:
    """'*' takes all, a name takes one, '!name' drops one; unknown names are an error."""
    chosen: list[str] = []
    for entry in selection:
        name = entry[1:] if entry.startswith("!") else entry
        if name != "*" and name not in available:
            raise ValueError(
                f"unknown scaler {name!r} in a loss's scalers; defined scalers: "
                f"{sorted(available) or 'none'} (training.scalers)"
            )
        if entry == "*":
            chosen += [n for n in available if n not in chosen]
        elif entry.startswith("!"):
            chosen = [n for n in chosen if n != name]
        elif name not in chosen:
            chosen.append(name)
    return [available[name] for name in chosen]


def variable_weights(variables: list[str], weights: dict[str, float]) -> Scaler:
    """Per-variable weights by name; `default` for the rest (1 unless given)."""
    default = float(weights.get("default", 1.0))
    unknown = sorted(set(weights) - set(variables) - {"default"})
    if unknown:
        raise ValueError(f"variable weights name {unknown}, which are not outputs: {variables}")
    values = [float(weights.get(name, default)) for name in variables]
    return Scaler("variable_weights", ("variable",), torch.tensor(values))


def pressure_level(
    variables: list[str],
    method: str,
    slope: float = 0.001,
    y_intercept: float = 0.2,
    exponent: float = 2.0,
) -> Scaler:
    """Weights of `param_level` variables by level (hPa); single-level variables get 1.

    relu: max(y_intercept, slope * level); linear: slope * level; polynomial: max(y_intercept,
    (slope * level) ** exponent); none: 1.
    """
    rules = {
        "relu": lambda level: max(y_intercept, slope * level),
        "linear": lambda level: slope * level,
        "polynomial": lambda level: max(y_intercept, (slope * level) ** exponent),
        "none": lambda level: 1.0,
    }
    if method not in rules:
        raise ValueError(f"pressure level scaler method {method!r}; choose from {sorted(rules)}")
    values = []
    for name in variables:
        match = _LEVEL.match(name)
        values.append(rules[method](int(match["level"])) if match else 1.0)
    return Scaler("pressure_level", ("variable",), torch.tensor(values, dtype=torch.float32))


def node_weights(name: str, values: torch.Tensor) -> Scaler:
    """A graph node attribute over the grid (area weights, a regional mask)."""
    values = values.float()
    if (values < 0).any() or values.sum() <= 0:
        raise ValueError(f"the node attribute for scaler {name!r} must be >= 0 with a positive sum")
    return Scaler(name, ("grid",), values)


def region_points(region: dict[str, Any], node_attributes: dict[str, torch.Tensor]) -> torch.Tensor:
    """(grid,) True inside the region: {box: [south, north, west, east]} in degrees, or
    {mask: <boolean data-node attribute>} such as a cut-out dataset's cutout_mask."""
    if set(region) == {"box"}:
        inside = in_box(node_attributes["latitude"], node_attributes["longitude"], region["box"])
        return torch.from_numpy(inside)
    if set(region) == {"mask"}:
        if region["mask"] not in node_attributes:
            raise ValueError(
                f"region mask {region['mask']!r} is not a data-node attribute of the graph; it "
                f"has {sorted(node_attributes)}"
            )
        return node_attributes[region["mask"]].bool()
    raise ValueError(
        f"a scaler's region is {{box: [south, north, west, east]}} or {{mask: name}}, got {region}"
    )


def region_share(name: str, values: torch.Tensor, inside: torch.Tensor, fraction: float) -> Scaler:
    """Grid weights `values` rescaled so that the points `inside` hold `fraction` of the total
    (a stretched grid's area of interest). Exact when it is the loss's only grid scaler: it
    carries the node weights (e.g. area) itself."""
    if not 0 < fraction < 1:
        raise ValueError(f"scaler {name!r}: region_fraction must lie strictly between 0 and 1")
    if not inside.any() or inside.all():
        raise ValueError(
            f"scaler {name!r}: the region holds {int(inside.sum())} of {len(inside)} grid points; "
            "it must hold some but not all of them"
        )
    values = node_weights(name, values).values
    inside_share = values * inside / values[inside].sum()
    outside_share = values * ~inside / values[~inside].sum()
    return Scaler(name, ("grid",), fraction * inside_share + (1 - fraction) * outside_share)


def tendency(
    variables: list[str], stdev: list[float], tendency_stdev: list[float], squared: bool = False
) -> Scaler:
    """stdev(x) / stdev(dx) per variable (its square with `squared`): errors of slowly varying
    fields count as much as those of fast ones, relative to how much they change per step."""
    ratio = torch.tensor(stdev, dtype=torch.float64) / torch.tensor(tendency_stdev).clamp_min(1e-12)
    ratio = ratio**2 if squared else ratio
    name = "tendency_squared" if squared else "tendency"
    return Scaler(name, ("variable",), ratio.float())


def lead_time_decay(steps: int, rate: float) -> Scaler:
    """exp(-rate * step) over the output times: later steps weigh less."""
    values = torch.tensor([math.exp(-rate * step) for step in range(steps)])
    return Scaler("lead_time_decay", ("time",), values)


def time_step_weights(weights: list[float]) -> Scaler:
    values = torch.tensor(weights, dtype=torch.float32)
    if (values < 0).any() or values.sum() <= 0:
        raise ValueError("time step weights must be >= 0 with a positive sum")
    return Scaler("time_step_weights", ("time",), values)


def variable_mask(variables: list[str], masked: list[str]) -> Scaler:
    """0 for the variables left out of the loss, 1 for the rest."""
    unknown = sorted(set(masked) - set(variables))
    if unknown:
        raise ValueError(f"variable mask names {unknown}, which are not outputs: {variables}")
    values = torch.tensor([0.0 if name in masked else 1.0 for name in variables])
    return Scaler("variable_mask", ("variable",), values)


def build_scalers(
    settings: dict[str, Any],
    variables: list[str],
    statistics: dict[str, list[float]],
    node_attributes: dict[str, torch.Tensor],
) -> dict[str, Scaler]:
    """The scalers named in `training.scalers` (a dict of name -> settings)."""
    builders = {
        "variable_weights": lambda s: variable_weights(variables, s),
        "pressure_level": lambda s: pressure_level(variables, **s),
        "tendency": lambda s: tendency(
            variables, statistics["stdev"], statistics["tendency_stdev"], **s
        ),
        "lead_time_decay": lambda s: lead_time_decay(**s),
        "time_step_weights": lambda s: time_step_weights(**s),
        "variable_mask": lambda s: variable_mask(variables, **s),
    }
    scalers: dict[str, Scaler] = {}
    for name, options in settings.items():
        if name in builders:
            scalers[name] = builders[name](options or {})
        elif isinstance(options, dict) and options.get("node_attribute"):
            attribute = options["node_attribute"]
            if attribute not in node_attributes:
                raise ValueError(
                    f"scaler {name!r} uses the node attribute {attribute!r}, which the graph's "
                    f"data nodes do not have; they have {sorted(node_attributes)}"
                )
            values = node_attributes[attribute]
            if "region_fraction" in options:
                inside = region_points(options.get("region", {}), node_attributes)
                scalers[name] = region_share(name, values, inside, options["region_fraction"])
            else:
                scalers[name] = node_weights(name, values)
        else:
            raise ValueError(
                f"unknown scaler {name!r}: use one of {sorted(builders)}, or give "
                "{node_attribute: <graph data-node attribute>} for a grid scaler"
            )
    return scalers
