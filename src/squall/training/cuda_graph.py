"""Training steps replayed as CUDA graphs (`training.cuda_graph`).

An eager step of a large graph network launches ~3,000 kernels; on a fast GPU the host cannot
launch them as fast as the GPU runs them, and the GPU idles a third of the step (issue 10,
benchmarks/gpu/NOTES.md v6). Recorded once into a CUDA graph, the step's launches cost one
`replay()`. Requirements, all checked by the capture itself (which fails on any host
synchronisation): static shapes, no host-side decisions on tensor values, autocast with its
weight-cast cache off (Lightning's bf16 plugin has it off), and gradient checkpointing with
use_reentrant=False (the recompute is recorded with the backward).

After each replay the optimiser steps eagerly; adamw is then torch's fused AdamW (one kernel, no
parameter-sized temporaries: ~3.5 ms and ~0.9 GiB less on a 250M-parameter model, NOTES v8b).
Lightning refuses to clip a fused optimiser's gradients, so the step clips them itself
(`clip_gradient_norm`, the same norm clipping, on the device). fp16-mixed is refused: its loss
scaling would have to be recorded in the graph (bf16-mixed and fp32 need none).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

WARMUP_STEPS = 3  # the first calls compile the Triton kernels: never during a capture


class CapturedStep:
    """`step(*inputs) -> loss` recorded once into a CUDA graph, replayed per call.

    `step` runs forward and backward (and, if the caller wants, a capturable optimiser's step).
    Warm-up runs on a side stream with the example inputs. The gradients of `parameters` are
    set to None before capture, so the captured backward allocates them in the graph's memory
    pool and writes them afresh on each replay (no accumulation across steps); each replay
    points the parameters' `.grad` at them again, so several graphs (one per batch shape) can
    take turns. `pool`: another graph's memory pool to share; safe here because every replay
    is self-contained (inputs live outside the pool, its gradients and loss are used before the
    next replay of any graph)."""

    def __init__(
        self,
        step: Callable[..., torch.Tensor],
        parameters: Iterable[torch.nn.Parameter],
        example_inputs: list[torch.Tensor],
        warmup: int = WARMUP_STEPS,
        pool: tuple[int, int] | None = None,
    ) -> None:
        self.parameters = [p for p in parameters if p.requires_grad]
        self.inputs = [t.detach().clone() for t in example_inputs]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(warmup):
                self._drop_gradients()
                step(*self.inputs)
        torch.cuda.current_stream().wait_stream(side)
        self._drop_gradients()
        torch.cuda.synchronize()
        torch.cuda.empty_cache()  # the warm-up's activations: return them before the graph's pool
        self.graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(self.graph, pool=pool):
                self.loss = step(*self.inputs)
        except RuntimeError as error:
            raise RuntimeError(
                "recording the training step as a CUDA graph failed: something in it waits for "
                "the GPU on the host (.item(), .tolist(), a shape that depends on values, a "
                "copy to the CPU) or differs between calls. Set training.cuda_graph=false for "
                f"this model and task. Cause: {error}"
            ) from error
        self.gradients = [parameter.grad for parameter in self.parameters]

    def _drop_gradients(self) -> None:
        for parameter in self.parameters:
            parameter.grad = None

    def accepts(self, inputs: list[torch.Tensor]) -> bool:
        """Whether `inputs` have the shapes and dtypes of the capture's."""
        return len(inputs) == len(self.inputs) and all(
            new.shape == static.shape and new.dtype == static.dtype
            for static, new in zip(self.inputs, inputs, strict=True)
        )

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        if not self.accepts(list(inputs)):
            shapes = [tuple(t.shape) for t in self.inputs]
            raise ValueError(
                f"a captured step takes inputs of its capture's shapes {shapes}, got "
                f"{[tuple(t.shape) for t in inputs]}: capture another step for these shapes"
            )
        for static, new in zip(self.inputs, inputs, strict=True):
            if new.data_ptr() != static.data_ptr():
                static.copy_(new, non_blocking=True)
        self.graph.replay()
        for parameter, gradient in zip(self.parameters, self.gradients, strict=True):
            parameter.grad = gradient
        return self.loss


def clip_gradient_norm(optimizer: torch.optim.Optimizer, max_norm: float) -> torch.Tensor:
    """Scale the gradients of `optimizer`'s parameters so that their global L2 norm is at most
    `max_norm`: Lightning's norm clipping (training.gradient_clip_val), which it refuses for a
    fused optimiser. Foreach kernels on the device; the norm is returned as a tensor and must
    not be read on the host (that would wait for the GPU every step)."""
    parameters = [parameter for group in optimizer.param_groups for parameter in group["params"]]
    return torch.nn.utils.clip_grad_norm_(parameters, max_norm, foreach=True)


class GraphedTrainingStep:
    """The manual-optimisation training step of a task with `training.cuda_graph`: forward and
    backward replayed from a CUDA graph, then squall's own gradient clipping, the optimiser
    (adamw fused, see Forecaster.configure_optimizers) and the learning-rate schedule, eagerly
    (a handful of fused kernels, so Lightning keeps counting steps and the schedule stays a
    plain float).

    One graph per batch shape (an epoch's smaller last batch, each rollout length of the
    curriculum), recorded at its first batch and kept, all in one shared memory pool. Not an
    eager step into a graph's gradient tensors (replays after one went wrong on the storm run)
    and not a new recording per change (each left its pool's memory allocated):
    benchmarks/gpu/NOTES.md v7."""

    def __init__(self, loss_of_batch: Callable[[dict[str, torch.Tensor], int], torch.Tensor]):
        self.loss_of_batch = loss_of_batch
        self.graphs: dict[tuple, CapturedStep] = {}

    def _forward_backward(self, keys: list[str], rollout: int) -> Callable[..., torch.Tensor]:
        def step(*tensors: torch.Tensor) -> torch.Tensor:
            loss = self.loss_of_batch(dict(zip(keys, tensors, strict=True)), rollout)
            loss.backward()
            return loss.detach()

        return step

    def __call__(self, task: Any, batch: dict[str, torch.Tensor], rollout: int) -> torch.Tensor:
        keys = sorted(key for key, value in batch.items() if isinstance(value, torch.Tensor))
        tensors = [batch[key] for key in keys]
        shape = (rollout, *((key, tuple(batch[key].shape), batch[key].dtype) for key in keys))
        captured = self.graphs.get(shape)
        if captured is None:
            first = next(iter(self.graphs.values()), None)
            captured = CapturedStep(
                self._forward_backward(keys, rollout),
                task.parameters(),
                tensors,
                # the first warm-up compiles the kernels: later graphs need one step
                warmup=WARMUP_STEPS if first is None else 1,
                pool=None if first is None else first.graph.pool(),
            )
            self.graphs[shape] = captured
        # a copy: the graph's loss tensor is overwritten by the next replay
        loss = captured(*tensors).clone()
        self.step_optimizer(task)
        return loss

    @staticmethod
    def step_optimizer(task: Any) -> None:
        """After a replay: clip the gradients (training.gradient_clip_val), step the optimiser
        and the learning-rate schedule, in the order of Lightning's automatic optimisation."""
        optimizer = task.optimizers()
        clip = task.config["training"].get("gradient_clip_val")
        if clip is not None:
            clip_gradient_norm(optimizer, clip)
        optimizer.step()
        scheduler = task.lr_schedulers()
        if scheduler is not None:
            scheduler.step()


def check_cuda_graph_run(enabled: bool, device: torch.device, world_size: int) -> None:
    """Clear errors for a `training.cuda_graph` run the graphs cannot serve."""
    if not enabled:
        return
    if device.type != "cuda":
        raise ValueError(
            "training.cuda_graph replays the training step on a CUDA GPU, but this run trains on "
            f"{device.type}: set system.hardware.accelerator=gpu on a GPU machine, or "
            "training.cuda_graph=false"
        )
    if world_size > 1:
        raise ValueError(
            f"training.cuda_graph trains on one GPU; this run has {world_size} processes "
            "(data parallel or model sharding): set training.cuda_graph=false"
        )
