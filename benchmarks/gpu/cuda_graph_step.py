"""A whole training step (forward, loss, backward, optimiser) captured into one CUDA graph.

The step's ~3,000 kernel launches then cost one `replay()` of host time: what is left on the
host is copying the next sample into the graph's static input buffers. Requirements (all checked
by the capture itself, which fails on any host synchronisation): static shapes (one graph, one
batch size), no host-side decisions on tensor values, an optimiser built with
`capturable=True` (its step counter lives on the device), autocast with its weight-cast cache
off (a cache entry made during capture would be freed under the graph). Gradient checkpointing
(use_reentrant=False) captures too: the recompute is recorded as part of the backward.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


class CapturedStep:
    """`step(*inputs) -> loss` (without zero_grad) recorded once, replayed per call.

    Warm-up runs on a side stream (the first calls compile the Triton kernels and create the
    optimiser's state, neither of which may happen during capture). Gradients are set to None
    before capture, so the captured backward allocates them in the graph's memory pool and
    writes them afresh on each replay (no accumulation across steps)."""

    def __init__(
        self,
        step: Callable[..., torch.Tensor],
        optimizer: torch.optim.Optimizer,
        example_inputs: list[torch.Tensor],
        warmup: int = 3,
    ) -> None:
        if not all(group.get("capturable", False) for group in optimizer.param_groups):
            raise ValueError(
                "CUDA-graph capture needs an optimiser built with capturable=True "
                "(its step count must stay on the device)"
            )
        self.inputs = [t.detach().clone() for t in example_inputs]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(warmup):
                optimizer.zero_grad(set_to_none=True)
                step(*self.inputs)
        torch.cuda.current_stream().wait_stream(side)
        optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        torch.cuda.empty_cache()  # the warm-up's activations: return them before the graph's pool
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.loss = step(*self.inputs)

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        for static, new in zip(self.inputs, inputs, strict=True):
            if new.shape != static.shape:
                raise ValueError(
                    f"a captured step takes inputs of its capture's shape {tuple(static.shape)}, "
                    f"got {tuple(new.shape)}: capture another step for this shape"
                )
            if new.data_ptr() != static.data_ptr():
                static.copy_(new, non_blocking=True)
        self.graph.replay()
        return self.loss
