"""Layer norm whose output feeds a matmul under autocast: one pass, half-precision output.

Under autocast, nn.LayerNorm runs in fp32 and returns fp32, and the next Linear casts that to
bf16: two passes over the activations and an fp32 copy. The fused kernel normalises in fp32 and
writes the autocast dtype directly; its backward reads the half-precision gradient, returns an
fp32 input gradient and fp32 weight/bias gradients, as the unfused pair does.
"""

from __future__ import annotations

import torch
from torch import nn

from squall.models.kernels.dispatch import fused_kernels_enabled

_ROWS = 4  # rows a program holds at once (C=1024 fp32 rows, 4 warps)
_STEPS = 16  # backward: row groups per program, so the weight-gradient partials stay small


class _FusedLayerNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps, out_dtype):
        from squall.models.kernels.layer_norm_triton import layer_norm_forward_kernel

        shape, channels = x.shape, x.shape[-1]
        rows = x.reshape(-1, channels).contiguous()
        out = torch.empty(rows.shape, device=x.device, dtype=out_dtype)
        mean = torch.empty(rows.shape[0], device=x.device, dtype=torch.float32)
        rstd = torch.empty_like(mean)
        block = 1 << (channels - 1).bit_length()
        layer_norm_forward_kernel[(triton_cdiv(rows.shape[0], _ROWS),)](
            rows, weight, bias if bias is not None else weight, out, mean, rstd,
            rows.shape[0], channels, eps,
            HAS_BIAS=bias is not None, BLOCK=block, ROWS=_ROWS, num_warps=_warps(block),
        )  # fmt: skip
        ctx.save_for_backward(rows, weight, mean, rstd)
        ctx.has_bias, ctx.shape, ctx.x_dtype = bias is not None, shape, x.dtype
        return out.reshape(shape)

    @staticmethod
    def backward(ctx, grad_out):
        from squall.models.kernels.layer_norm_triton import layer_norm_backward_kernel

        rows, weight, mean, rstd = ctx.saved_tensors
        num_rows, channels = rows.shape
        grad_out = grad_out.reshape(num_rows, channels).contiguous()
        grad_x = torch.empty(rows.shape, device=rows.device, dtype=ctx.x_dtype)
        programs = triton_cdiv(num_rows, _ROWS * _STEPS)
        partial_weight = torch.empty(programs, channels, device=rows.device, dtype=torch.float32)
        partial_bias = torch.empty_like(partial_weight) if ctx.has_bias else partial_weight
        block = 1 << (channels - 1).bit_length()
        layer_norm_backward_kernel[(programs,)](
            rows, weight, grad_out, mean, rstd, grad_x, partial_weight, partial_bias,
            num_rows, channels,
            HAS_BIAS=ctx.has_bias, BLOCK=block, ROWS=_ROWS, STEPS=_STEPS, num_warps=_warps(block),
        )  # fmt: skip
        grad_weight = partial_weight.sum(0).to(weight.dtype)
        grad_bias = partial_bias.sum(0).to(weight.dtype) if ctx.has_bias else None
        return grad_x.reshape(ctx.shape), grad_weight, grad_bias, None, None


def triton_cdiv(a: int, b: int) -> int:
    return (a + b - 1) // b


def _warps(block: int) -> int:
    return max(1, min(8, block // 256))


def fused_layer_norm(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    eps: float,
    out_dtype: torch.dtype,
) -> torch.Tensor:
    """layer_norm(x) over the last axis, computed in fp32, returned as `out_dtype`."""
    return _FusedLayerNorm.apply(x, weight, bias, eps, out_dtype)


def norm_for_matmul(norm: nn.Module, x: torch.Tensor) -> torch.Tensor | None:
    """The fused layer norm of `x` if it applies (CUDA autocast, a plain affine nn.LayerNorm
    over the last axis, fp32 or autocast-dtype input), else None: the caller then uses the
    module itself. The input gradient comes back in the input's dtype, as autocast's own
    (fp32-computing) layer norm returns it."""
    device = x.device.type
    if (
        type(norm) is not nn.LayerNorm
        or not norm.elementwise_affine
        or len(norm.normalized_shape) != 1
        or not torch.is_autocast_enabled(device)
        or x.dtype not in (torch.float32, torch.get_autocast_dtype(device))
        or not fused_kernels_enabled(x)
    ):
        return None
    return fused_layer_norm(x, norm.weight, norm.bias, norm.eps, torch.get_autocast_dtype(device))
