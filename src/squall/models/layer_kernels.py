"""Layer kernels chosen in the config by `_target_`: norm, linear, activation and MLP variant.

A config names a class, e.g. `{"_target_": "torch.nn.RMSNorm", "eps": 1e-6}`; only classes in
an allowlist may be named (configs are data, not code). Every layer of the network asks its
`LayerKernels` for a fresh module, so one config entry changes the kernel everywhere.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

# Module prefixes a `_target_` may start with. Anything else needs a code change here, on purpose.
ALLOWED_TARGET_PREFIXES = ("torch.nn.", "squall.models.")
KERNEL_ROLES = ("norm", "linear", "activation", "mlp")

DEFAULT_KERNELS: dict[str, dict[str, Any]] = {
    "norm": {"_target_": "torch.nn.LayerNorm"},
    "linear": {"_target_": "torch.nn.Linear"},
    "activation": {"_target_": "torch.nn.SiLU"},
    "mlp": {"_target_": "squall.models.layers.MLP"},
}


def resolve_target(target: str) -> type:
    """The class a `_target_` string names, if it is allowlisted."""
    if not isinstance(target, str) or not target.startswith(ALLOWED_TARGET_PREFIXES):
        raise ValueError(
            f"_target_ {target!r} is not allowed for a layer kernel: name a class under "
            f"{' or '.join(ALLOWED_TARGET_PREFIXES)} (e.g. torch.nn.LayerNorm)."
        )
    module_name, _, class_name = target.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"_target_ {target!r} does not name a class: {error}") from None
    if not isinstance(cls, type) or not issubclass(cls, nn.Module):
        raise ValueError(f"_target_ {target!r} is not a torch.nn.Module class.")
    return cls


def _partial(entry: dict[str, Any], role: str) -> Callable[..., nn.Module]:
    if "_target_" not in entry:
        raise ValueError(f"layer_kernels.{role} needs a _target_, got {entry!r}.")
    cls = resolve_target(entry["_target_"])
    kwargs = {key: value for key, value in entry.items() if key != "_target_"}

    def make(*args: Any, **extra: Any) -> nn.Module:
        try:
            return cls(*args, **kwargs, **extra)
        except TypeError as error:
            raise ValueError(
                f"layer_kernels.{role}: {entry['_target_']} rejected its arguments "
                f"{sorted(kwargs)}: {error}"
            ) from None

    return make


@dataclass
class LayerKernels:
    """Factories for the network's building blocks; `config` maps roles to `_target_` dicts.

    norm(channels), linear(in, out), activation(), mlp(in, hidden, out, num_hidden_layers,
    kernels=..., layer_norm=...).
    """

    config: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.config) - set(KERNEL_ROLES))
        if unknown:
            raise ValueError(f"unknown layer_kernels {unknown}; the roles are {KERNEL_ROLES}.")
        merged = {
            role: dict(self.config.get(role) or DEFAULT_KERNELS[role]) for role in KERNEL_ROLES
        }
        self.config = merged
        self._factories = {role: _partial(entry, role) for role, entry in merged.items()}
        self.activation()  # fail at build time, not at first forward

    def norm(self, channels: int) -> nn.Module:
        return self._factories["norm"](channels)

    def linear(self, in_channels: int, out_channels: int, **kwargs: Any) -> nn.Module:
        """kwargs (e.g. bias=False) go to the configured class."""
        return self._factories["linear"](in_channels, out_channels, **kwargs)

    def activation(self) -> nn.Module:
        return self._factories["activation"]()

    def mlp(self, in_channels: int, hidden_channels: int, out_channels: int, **kwargs) -> nn.Module:
        return self._factories["mlp"](
            in_channels, hidden_channels, out_channels, kernels=self, **kwargs
        )


def kernels_with_activation(
    layer_kernels: dict[str, dict[str, Any]] | None, activation: str
) -> LayerKernels:
    """LayerKernels from the config, where the `activation` shorthand ("GELU") names a
    torch.nn activation unless layer_kernels.activation sets one."""
    config = {role: entry for role, entry in (layer_kernels or {}).items() if entry is not None}
    if "activation" not in config:
        from squall.models.layers import VALID_ACTIVATIONS

        if activation not in VALID_ACTIVATIONS:
            raise ValueError(
                f"Unknown activation {activation!r}. Choose one of the torch.nn activations: "
                f"{', '.join(VALID_ACTIVATIONS)}."
            )
        config["activation"] = {"_target_": f"torch.nn.{activation}"}
    elif activation != "SiLU":
        raise ValueError(
            f"activation={activation!r} and layer_kernels.activation are both set; keep one."
        )
    return LayerKernels(config)
