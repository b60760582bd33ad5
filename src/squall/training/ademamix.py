"""AdEMAMix (Pagliardini, Ablin & Grangier, 2024, "The AdEMAMix Optimizer: Better, Faster,
Older"): Adam with a second, slow momentum mixed into the update.

    m1 = b1 m1 + (1 - b1) g          (fast EMA, bias-corrected)
    m2 = b3 m2 + (1 - b3) g          (slow EMA, not bias-corrected)
    v  = b2 v  + (1 - b2) g^2        (bias-corrected)
    p -= lr * ((m1_hat + alpha m2) / (sqrt(v_hat) + eps) + weight_decay p)

alpha and b3 ramp up over `warmup` steps (linearly for alpha; for b3 on the half-life scale,
as in the paper) so that the slow momentum does not destabilise the start of training.
Written from the paper's algorithm; torch has no AdEMAMix of its own.
"""

from __future__ import annotations

import math

import torch
from torch.optim import Optimizer


def _beta3_at(step: int, beta1: float, beta3: float, warmup: int) -> float:
    """From beta1 at step 0 to beta3 at `warmup`, linear in the half-life 1 / log(beta)."""
    if warmup <= 0 or step >= warmup:
        return beta3
    fraction = step / warmup
    log_b1, log_b3 = math.log(beta1), math.log(beta3)
    return math.exp(log_b1 * log_b3 / ((1 - fraction) * log_b3 + fraction * log_b1))


class AdEMAMix(Optimizer):
    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float, float] = (0.9, 0.999, 0.9999),
        alpha: float = 5.0,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        warmup: int = 0,
    ) -> None:
        if not 0.0 <= betas[0] < 1.0 or not 0.0 <= betas[1] < 1.0 or not 0.0 <= betas[2] < 1.0:
            raise ValueError(f"AdEMAMix betas must lie in [0, 1), got {betas}")
        defaults = dict(
            lr=lr, betas=betas, alpha=alpha, eps=eps, weight_decay=weight_decay, warmup=warmup
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2, beta3_final = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state["step"] = 0
                    state["fast"] = torch.zeros_like(param)
                    state["slow"] = torch.zeros_like(param)
                    state["second"] = torch.zeros_like(param)
                state["step"] += 1
                step = state["step"]
                warmup = group["warmup"]
                alpha = group["alpha"] * min(1.0, step / warmup) if warmup > 0 else group["alpha"]
                beta3 = _beta3_at(step, beta1, beta3_final, warmup)
                grad = param.grad
                state["fast"].mul_(beta1).add_(grad, alpha=1 - beta1)
                state["slow"].mul_(beta3).add_(grad, alpha=1 - beta3)
                state["second"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                fast_hat = state["fast"] / (1 - beta1**step)
                denominator = (state["second"] / (1 - beta2**step)).sqrt().add_(group["eps"])
                update = (fast_hat + alpha * state["slow"]) / denominator
                if group["weight_decay"]:
                    update = update.add(param, alpha=group["weight_decay"])
                param.add_(update, alpha=-group["lr"])
        return loss
