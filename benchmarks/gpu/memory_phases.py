"""Where a training step's device memory goes: allocated bytes around its phases.

One eager step with: the resident state before it (parameters, optimiser moments; gradients
None), the bytes each top-level component leaves allocated after its forward (what it keeps
for backward: checkpoint inputs, saved activations), the peak inside forward, backward and the
optimiser step, in GiB.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

GIB = 2**30


def memory_phases(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    forward_loss: Callable[[], torch.Tensor],
    components: tuple[str, ...] = ("encoder", "processor", "decoder", "output_mlp"),
) -> dict[str, float]:
    torch.cuda.synchronize()
    optimizer.zero_grad(set_to_none=True)
    record = {"resident": torch.cuda.memory_allocated() / GIB}
    hooks = []
    for name in components:
        module = getattr(model, name, None)
        if module is not None:
            hooks.append(module.register_forward_hook(_after(name, record)))
    torch.cuda.reset_peak_memory_stats()
    loss = forward_loss()
    for hook in hooks:
        hook.remove()
    record["after_forward"] = torch.cuda.memory_allocated() / GIB
    record["peak_forward"] = torch.cuda.max_memory_allocated() / GIB
    torch.cuda.reset_peak_memory_stats()
    loss.backward()
    record["peak_backward"] = torch.cuda.max_memory_allocated() / GIB
    record["after_backward"] = torch.cuda.memory_allocated() / GIB
    torch.cuda.reset_peak_memory_stats()
    optimizer.step()
    record["peak_optimizer"] = torch.cuda.max_memory_allocated() / GIB
    return {key: round(value, 3) for key, value in record.items()}


def _after(name: str, record: dict[str, float]):
    def hook(module, inputs, output):
        record[f"after_{name}"] = torch.cuda.memory_allocated() / GIB

    return hook
