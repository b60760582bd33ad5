"""Small building blocks shared by the graph networks: activations by name and the MLP."""

from __future__ import annotations

import torch
from torch import nn

# torch.nn activations that make sense between two Linear layers: element-wise, shape-preserving
# and constructible without arguments. Softmax-like ones normalise across channels, GLU halves
# them, Threshold and MultiheadAttention need constructor arguments.
_UNSUITABLE_ACTIVATIONS = {
    "GLU",
    "LogSoftmax",
    "MultiheadAttention",
    "Softmax",
    "Softmax2d",
    "Softmin",
    "Threshold",
}
VALID_ACTIVATIONS: tuple[str, ...] = tuple(
    sorted(set(nn.modules.activation.__all__) - _UNSUITABLE_ACTIVATIONS)
)


def make_activation(name: str) -> nn.Module:
    """A fresh instance of the torch.nn activation called `name` (e.g. "SiLU", "GELU")."""
    if name not in VALID_ACTIVATIONS:
        raise ValueError(
            f"Unknown activation {name!r}. Choose one of the torch.nn activations: "
            f"{', '.join(VALID_ACTIVATIONS)}."
        )
    return getattr(nn, name)()


class MLP(nn.Module):
    """Linear-act-(Linear-act)*-Linear, with an optional LayerNorm on the output.

    `num_hidden_layers` counts the hidden (activated) layers of width `hidden_channels`. The
    output LayerNorm keeps node and edge latents at unit scale, which matters because sums over
    incoming edges would otherwise grow with the node degree layer after layer.
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        out_channels: int,
        num_hidden_layers: int = 1,
        activation: str = "SiLU",
        layer_norm: bool = True,
    ) -> None:
        super().__init__()
        if num_hidden_layers < 1:
            raise ValueError(f"num_hidden_layers must be >= 1, got {num_hidden_layers}.")
        layers: list[nn.Module] = [nn.Linear(in_channels, hidden_channels)]
        layers.append(make_activation(activation))
        for _ in range(num_hidden_layers - 1):
            layers.append(nn.Linear(hidden_channels, hidden_channels))
            layers.append(make_activation(activation))
        layers.append(nn.Linear(hidden_channels, out_channels))
        if layer_norm:
            layers.append(nn.LayerNorm(out_channels))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
