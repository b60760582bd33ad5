"""Optimisers and the learning-rate schedule, from training.optimizer and training.lr_schedule.

The learning rate in the config is per model replica; with `scale_with_replicas` it is
multiplied by the number of data-parallel replicas (the effective batch grows with them: the
linear scaling rule of Goyal et al., 2017). Warm-up and cosine decay are stepped per optimiser
step (not per batch: gradient accumulation takes several batches per step).

AdamW is torch's default (foreach) implementation, or with `fused` its fused one: one kernel per
step and no parameter-sized temporaries (~3.5 ms and ~0.9 GiB less on a 250M-parameter model,
benchmarks/gpu/NOTES.md v8b). Lightning refuses to clip the gradients of a fused optimiser, so
only training.cuda_graph's step, which clips by itself, asks for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

from squall.training.ademamix import AdEMAMix


def effective_lr(lr: float, replicas: int, scale_with_replicas: bool) -> float:
    return lr * replicas if scale_with_replicas else lr


def build_optimizer(
    parameters: Iterable[torch.nn.Parameter],
    settings: dict[str, Any],
    replicas: int = 1,
    fused: bool = False,
) -> torch.optim.Optimizer:
    """The optimiser of training.optimizer. `fused`: adamw's fused implementation (the others
    have none and ignore it)."""
    name = settings.get("name", "adamw")
    lr = effective_lr(settings["lr"], replicas, settings.get("scale_with_replicas", False))
    betas = tuple(settings.get("betas", (0.9, 0.999)))
    weight_decay = settings.get("weight_decay", 0.0)
    parameters = [p for p in parameters if p.requires_grad]  # frozen modules stay out
    if name == "adamw":
        # fused=None, not False: False with foreach unset would fall back to the per-tensor loop
        optimizer = torch.optim.AdamW(
            parameters, lr=lr, betas=betas, weight_decay=weight_decay, fused=fused or None
        )
        optimizer.register_load_state_dict_pre_hook(_keep_implementation)
        return optimizer
    if name == "ademamix":
        return AdEMAMix(
            parameters,
            lr=lr,
            betas=(*betas[:2], settings.get("beta3", 0.9999)),
            alpha=settings.get("alpha", 5.0),
            weight_decay=weight_decay,
            warmup=settings.get("ademamix_warmup", 0),
        )
    if name == "zero_adamw":
        # ZeRO stage 1: AdamW's state sharded over the data-parallel ranks.
        from torch.distributed.optim import ZeroRedundancyOptimizer

        if not torch.distributed.is_available() or not torch.distributed.is_initialized():
            raise ValueError(
                "optimizer zero_adamw shards the optimiser state over data-parallel ranks and "
                "needs a distributed run (several devices or nodes); use adamw on one device"
            )
        return ZeroRedundancyOptimizer(
            parameters,
            optimizer_class=torch.optim.AdamW,
            lr=lr,
            betas=betas,
            weight_decay=weight_decay,
        )
    raise ValueError(f"unknown optimizer {name!r}; choose adamw, ademamix or zero_adamw")


def _keep_implementation(
    optimizer: torch.optim.Optimizer, state_dict: dict[str, Any]
) -> dict[str, Any]:
    """A checkpoint's parameter groups carry the implementation of the run that saved them, and
    loading would adopt it: keep this run's instead (a run resumed with training.cuda_graph
    switched on stays fused; one switched off must not, or Lightning refuses to clip). The step
    counts go where this implementation keeps them: on the device when fused (torch moves
    them), on the host otherwise (one host read per parameter and step if left on the GPU)."""
    groups = []
    for saved, current in zip(state_dict["param_groups"], optimizer.param_groups, strict=True):
        groups.append(saved | {key: current[key] for key in ("fused", "foreach", "capturable")})
    state = state_dict["state"]
    if not any(group["fused"] or group["capturable"] for group in groups):
        state = {
            key: value | {"step": value["step"].cpu()}
            if isinstance(value.get("step"), torch.Tensor)
            else value
            for key, value in state.items()
        }
    return state_dict | {"param_groups": groups, "state": state}


def warmup_cosine(total_steps: int | Callable[[], int], warmup_steps: int, floor: float):
    """LR factor per optimiser step: linear warm-up to 1, cosine decay to `floor` at the end.

    `total_steps` may be a function, asked only once the decay starts: the trainer's estimate
    builds the training dataloader, which must not happen before a resumed run has restored
    the loader's position.
    """
    cache: list[int] = []

    def total() -> int:
        if not cache:
            cache.append(max(1, int(total_steps() if callable(total_steps) else total_steps)))
        return cache[0]

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        if step == 0:
            return 1.0  # no warm-up: the first step is at the full rate, whatever the total
        progress = min(1.0, (step - warmup_steps) / max(1, total() - warmup_steps))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor
