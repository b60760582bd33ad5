"""The GNN edge MLP's first hidden layer on target-sorted edges, as one fused op.

    edge_hidden = act(projected_edges + projected_sources[:, src] + projected_targets[:, dst])

where the three projections are the parts of the first linear layer applied to the edge
features, the source nodes and the target nodes (message_passing applies it part by part).
Unfused, that is five passes over (batch, edges, channels) tensors forward (two gathers, two
adds, the activation) and as many backward; the fused kernel reads each input row once, writes
only the activated output and recomputes the pre-activation in backward instead of saving it.
`edge_hidden` runs the Triton kernel on CUDA (or Triton's interpreter) and the plain-PyTorch
reference elsewhere or with SQUALL_FUSED_KERNELS=0.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from squall.models.kernels.csr import target_csr
from squall.models.kernels.dispatch import fused_kernels_enabled
from squall.models.kernels.gather import gather_rows
from squall.models.kernels.graph_attention import _batch_stride
from squall.models.kernels.layer_norm import triton_cdiv

# activation name -> the kernels' ACTIVATION code (edge_hidden_triton.py)
ACTIVATION_CODES = {"SiLU": 0, "GELU": 1, "GELU_tanh": 2}


def fused_activation_name(module: nn.Module) -> str | None:
    """The edge_hidden name of an activation module the fused kernel computes, else None."""
    if type(module) is nn.SiLU:
        return "SiLU"
    if type(module) is nn.GELU:
        return "GELU" if module.approximate == "none" else "GELU_tanh"
    return None


def _check(projected_edges, projected_sources, projected_targets, edge_index, activation) -> None:
    if activation not in ACTIVATION_CODES:
        raise ValueError(
            f"edge_hidden has no activation {activation!r}: use one of {sorted(ACTIVATION_CODES)}"
        )
    if projected_sources.dim() != 3 or projected_targets.dim() != 3:
        raise ValueError(
            "projected_sources and projected_targets must be (batch, nodes, channels); got "
            f"{tuple(projected_sources.shape)} and {tuple(projected_targets.shape)}"
        )
    batch, channels = projected_sources.shape[0], projected_sources.shape[-1]
    num_edges = edge_index.shape[-1]
    edges_ok = projected_edges.dim() == 2 or (
        projected_edges.dim() == 3 and projected_edges.shape[0] in (1, batch)
    )
    if (
        edge_index.dim() != 2
        or edge_index.shape[0] != 2
        or not edges_ok
        or projected_edges.shape[-2] != num_edges
        or projected_targets.shape[0] != batch
        or channels != projected_targets.shape[-1]
        or channels != projected_edges.shape[-1]
    ):
        raise ValueError(
            f"edge_hidden wants projected_edges (edges, C) or (1 or batch, edges, C), "
            f"projected_sources (batch, Ns, C), projected_targets (batch, Nt, C) and edge_index "
            f"(2, edges) with one batch, edge count and C; got {tuple(projected_edges.shape)}, "
            f"{tuple(projected_sources.shape)}, {tuple(projected_targets.shape)}, "
            f"{tuple(edge_index.shape)}"
        )


def edge_pre_activation(
    projected_edges: torch.Tensor,
    projected_sources: torch.Tensor,
    projected_targets: torch.Tensor,
    edge_index: torch.Tensor,
) -> torch.Tensor:
    """projected_edges + projected_sources[:, src] + projected_targets[:, dst] -> (B, E, C), by
    gathers and adds in the inputs' dtype: the unfused route of the GNN's first layer."""
    hidden = projected_edges + gather_rows(projected_sources, edge_index[0])
    return hidden + gather_rows(projected_targets, edge_index[1], index_is_sorted=True)


def _activate(pre_activation: torch.Tensor, activation: str) -> torch.Tensor:
    if activation == "SiLU":
        return F.silu(pre_activation)
    approximate = "tanh" if activation == "GELU_tanh" else "none"
    return F.gelu(pre_activation, approximate=approximate)


def edge_hidden_reference(
    projected_edges: torch.Tensor,
    projected_sources: torch.Tensor,
    projected_targets: torch.Tensor,
    edge_index: torch.Tensor,
    activation: str,
) -> torch.Tensor:
    """Plain PyTorch, the exact unfused math: gathers, adds, then the activation."""
    _check(projected_edges, projected_sources, projected_targets, edge_index, activation)
    pre_activation = edge_pre_activation(
        projected_edges, projected_sources, projected_targets, edge_index
    )
    return _activate(pre_activation, activation)


class _FusedEdgeHidden(torch.autograd.Function):
    @staticmethod
    def forward(ctx, edges, sources, targets, offsets, source_index, activation):
        from squall.models.kernels.edge_hidden_triton import edge_hidden_forward_kernel

        batch, num_targets, channels = targets.shape
        num_edges = source_index.shape[0]
        out = torch.empty(batch, num_edges, channels, device=targets.device, dtype=targets.dtype)
        block, warps = _channel_block(channels)
        if num_targets and num_edges:
            strides, align = _strides_in_aligned_units(edges, sources, targets)
            edge_hidden_forward_kernel[(num_targets, batch, triton_cdiv(channels, block))](
                edges, sources, targets, offsets, source_index, out, *strides, num_edges,
                channels // align, ACTIVATION=ACTIVATION_CODES[activation], BLOCK=block,
                ALIGN=align, num_warps=warps,
            )  # fmt: skip
        ctx.save_for_backward(edges, sources, targets, offsets, source_index)
        ctx.activation = activation
        return out

    @staticmethod
    def backward(ctx, grad_out):
        from squall.models.kernels.edge_hidden_triton import edge_hidden_backward_kernel

        edges, sources, targets, offsets, source_index = ctx.saved_tensors
        batch, num_targets, channels = targets.shape
        num_sources, num_edges = sources.shape[1], source_index.shape[0]
        grad_out = grad_out.contiguous()
        shared_edges = edges.shape[0] != batch
        grad_edges = torch.empty(
            edges.shape[0], num_edges, channels, device=edges.device, dtype=edges.dtype
        )
        grad_sources = torch.zeros(sources.shape, device=sources.device, dtype=torch.float32)
        grad_targets = torch.empty(targets.shape, device=targets.device, dtype=targets.dtype)
        block, warps = _channel_block(channels)
        if num_targets:
            strides, align = _strides_in_aligned_units(edges, sources, targets)
            edge_hidden_backward_kernel[(num_targets, triton_cdiv(channels, block))](
                edges, sources, targets, offsets, source_index, grad_out,
                grad_edges, grad_sources, grad_targets, *strides,
                batch, num_edges, num_sources, num_targets, channels // align,
                SHARED_EDGES=shared_edges, ACTIVATION=ACTIVATION_CODES[ctx.activation],
                BLOCK=block, ALIGN=align, num_warps=warps,
            )  # fmt: skip
        return grad_edges, grad_sources.to(sources.dtype), grad_targets, None, None, None


def _strides_in_aligned_units(
    edges: torch.Tensor, sources: torch.Tensor, targets: torch.Tensor
) -> tuple[list[int], int]:
    """The kernels' six batch and row strides divided by ALIGN, and ALIGN: the largest power of
    two up to 16 dividing them and the channel count (edge_hidden_triton.py says why)."""
    strides = [_batch_stride(edges), edges.stride(1), sources.stride(0), sources.stride(1)]
    strides += [targets.stride(0), targets.stride(1)]
    common = math.gcd(targets.shape[-1], *strides)
    align = math.gcd(common, 16) if common else 16
    return [stride // align for stride in strides], align


def _channel_block(channels: int) -> tuple[int, int]:
    """(BLOCK, num_warps): the power-of-two channel block (128 to 1024 wide, or the whole row
    when narrower) that pads `channels` least, the larger on ties (664 -> 3 blocks of 256, not
    one of 1024); from 256 wide, 8 values a thread (16-byte bf16 vectors)."""
    widest = min(1024, 1 << (channels - 1).bit_length())
    candidates = [widest >> shift for shift in range(4) if widest >> shift >= min(128, widest)]
    block = min(candidates, key=lambda size: (triton_cdiv(channels, size) * size, -size))
    return block, max(1, min(4, block // 256))


def edge_hidden(
    projected_edges: torch.Tensor,
    projected_sources: torch.Tensor,
    projected_targets: torch.Tensor,
    edge_index: torch.Tensor,
    activation: str,
) -> torch.Tensor:
    """act(projected_edges + projected_sources[:, src] + projected_targets[:, dst]).

    projected_edges (E, C) or (1 or B, E, C), projected_sources (B, Ns, C), projected_targets
    (B, Nt, C), edge_index (2, E) sorted by target (row 1; the graph loader sorts once) ->
    (B, E, C) in the inputs' dtype. `activation`: "SiLU", "GELU" (exact) or "GELU_tanh"."""
    if not fused_kernels_enabled(projected_sources):
        return edge_hidden_reference(
            projected_edges, projected_sources, projected_targets, edge_index, activation
        )
    _check(projected_edges, projected_sources, projected_targets, edge_index, activation)
    dtype = torch.promote_types(
        torch.promote_types(projected_edges.dtype, projected_sources.dtype),
        projected_targets.dtype,
    )
    edges = projected_edges if projected_edges.dim() == 3 else projected_edges.unsqueeze(0)
    tensors = [t.to(dtype) for t in (edges, projected_sources, projected_targets)]
    # the kernels want unit stride along the channels
    tensors = [t if t.stride(-1) == 1 else t.contiguous() for t in tensors]
    offsets, source_index = target_csr(edge_index, projected_targets.shape[1])
    return _FusedEdgeHidden.apply(*tensors, offsets, source_index, activation)
