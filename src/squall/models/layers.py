"""Small building blocks shared by the networks: activations by name, the MLPs (plain and
gated) and the conditional layer norm that injects noise in the ensemble variant."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from squall.models.kernels import norm_for_matmul

if TYPE_CHECKING:
    from squall.models.layer_kernels import LayerKernels

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


class ConditionalLayerNorm(nn.Module):
    """LayerNorm whose scale and shift are predicted from a condition (batch, condition_channels)
    such as a noise vector. Zero-initialised: with any condition it starts as a plain LayerNorm,
    and the network learns how much the noise should move it."""

    def __init__(self, channels: int, condition_channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels, elementwise_affine=False)
        self.scale_shift = nn.Linear(condition_channels, 2 * channels)
        nn.init.zeros_(self.scale_shift.weight)
        nn.init.zeros_(self.scale_shift.bias)

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        scale, shift = self.scale_shift(condition).chunk(2, dim=-1)
        # condition (batch, C) broadcasts over every middle axis of x (batch, ..., channels)
        shape = (condition.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)
        normed = self.norm(x)
        return normed * (1 + scale.reshape(shape).to(normed.dtype)) + shift.reshape(shape).to(
            normed.dtype
        )


def mlp_hidden_width(channels: int, ratio: float) -> int:
    """Hidden width of a block's MLP: `ratio` (model.mlp_hidden_ratio) x channels. A fractional
    product is rounded to a multiple of 8: bf16 rows of other widths are not 16-byte aligned,
    and the GPU's matmuls then take a path several times slower (seen: 1.3 x 512 = 666)."""
    if ratio <= 0:
        raise ValueError(f"mlp_hidden_ratio must be > 0, got {ratio}.")
    width = ratio * channels
    return int(width) if width == int(width) and width >= 1 else max(8, 8 * round(width / 8))


def make_norm(
    channels: int, kernels: LayerKernels | None = None, condition_channels: int = 0
) -> nn.Module:
    """The configured norm, or a ConditionalLayerNorm when a condition (noise) is injected."""
    if condition_channels > 0:
        return ConditionalLayerNorm(channels, condition_channels)
    return kernels.norm(channels) if kernels is not None else nn.LayerNorm(channels)


def apply_norm(norm: nn.Module, x: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
    if isinstance(norm, ConditionalLayerNorm):
        if condition is None:
            raise ValueError("this layer is conditional (ensemble noise): pass a condition")
        return norm(x, condition)
    return norm(x)


class MLP(nn.Module):
    """Linear-act-(Linear-act)*-Linear, with an optional norm on the output.

    `num_hidden_layers` counts the hidden (activated) layers of width `hidden_channels`. The
    output norm keeps node and edge latents at unit scale, which matters because sums over
    incoming edges would otherwise grow with the node degree layer after layer. With
    `condition_channels` > 0 that norm is conditional (forward takes the condition).
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        out_channels: int,
        num_hidden_layers: int = 1,
        activation: str = "SiLU",
        layer_norm: bool = True,
        kernels: LayerKernels | None = None,
        condition_channels: int = 0,
    ) -> None:
        super().__init__()
        if num_hidden_layers < 1:
            raise ValueError(f"num_hidden_layers must be >= 1, got {num_hidden_layers}.")
        linear = kernels.linear if kernels is not None else nn.Linear

        def act() -> nn.Module:
            return kernels.activation() if kernels is not None else make_activation(activation)

        self.layers = nn.Sequential(*self._hidden(in_channels, hidden_channels, linear, act))
        for _ in range(num_hidden_layers - 1):
            self.layers.append(linear(hidden_channels, hidden_channels))
            self.layers.append(act())
        self.layers.append(linear(hidden_channels, out_channels))
        self.norm = make_norm(out_channels, kernels, condition_channels) if layer_norm else None

    def _hidden(self, in_channels, hidden_channels, linear, act) -> list[nn.Module]:
        return [linear(in_channels, hidden_channels), act()]

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_after_first_layer(self.layers[0](x), condition)

    def first_linear(self) -> nn.Linear | None:
        """The first layer when it is a plain nn.Linear: a caller whose input is a concatenation
        may then apply it part by part (see message_passing), else None."""
        first = self.layers[0]
        return first if type(first) is nn.Linear else None

    def forward_after_first_layer(
        self, x: torch.Tensor, condition: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The rest of the MLP, given the output of its first layer."""
        x = self.layers[1:](x)
        return x if self.norm is None else apply_norm(self.norm, x, condition)

    def forward_after_first_activation(
        self, x: torch.Tensor, condition: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The rest of the MLP, given the output of its first activation (layers[1]): for a
        caller that fuses the first layer with its activation (kernels.edge_hidden)."""
        x = self.layers[2:](x)
        return x if self.norm is None else apply_norm(self.norm, x, condition)

    def forward_for_matmul(self, x: torch.Tensor) -> torch.Tensor:
        """forward(x) for a consumer that only multiplies it (linear layers): on CUDA under
        autocast the output norm is the fused one that writes the half-precision dtype, so no
        fp32 copy is made and cast by the consumer (see kernels.norm_for_matmul)."""
        x = self.layers(x)
        fused = None if self.norm is None else norm_for_matmul(self.norm, x)
        if fused is not None:
            return fused
        return x if self.norm is None else apply_norm(self.norm, x, None)


class GatedLinearUnit(nn.Module):
    """act(W_gate x) * (W_value x): the gated first layer of GLU-variant MLPs (SwiGLU with SiLU)."""

    def __init__(self, in_channels: int, out_channels: int, linear, activation: nn.Module):
        super().__init__()
        self.gate = linear(in_channels, out_channels)
        self.value = linear(in_channels, out_channels)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.gate(x)) * self.value(x)


class GatedMLP(MLP):
    """MLP whose first hidden layer is a gated linear unit (SwiGLU with the SiLU activation)."""

    def _hidden(self, in_channels, hidden_channels, linear, act) -> list[nn.Module]:
        return [GatedLinearUnit(in_channels, hidden_channels, linear, act())]


def embed_for_matmul(mlp: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """mlp(x) for a consumer that only multiplies it (read-only edge latents of the graph
    transformer), in the dtype autocast computes linear layers in: once here, not once per
    consumer. Unchanged without autocast (the CPU path)."""
    forward = getattr(mlp, "forward_for_matmul", None)
    out = mlp(x) if forward is None else forward(x)
    device = out.device.type
    if not torch.is_autocast_enabled(device):
        return out
    return out.to(torch.get_autocast_dtype(device))
