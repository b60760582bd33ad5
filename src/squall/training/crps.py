"""Ensemble losses: kernel CRPS (standard, fair, almost fair) and the energy score.

Predictions are (batch, time, member, grid, variable) ensembles, targets (batch, time, 1, grid,
variable). Per point, with M members x_j and truth y:

    CRPS = (1/M) sum_j |x_j - y| - c sum_{i<j} |x_i - x_j|
    standard c = 1/M^2, fair c = 1/(M(M-1)), almost fair c = (1 - eps)/(M(M-1)), eps = (1-alpha)/M

(the almost-fair form 1/(2M(M-1)) sum_{i!=j} [|x_i-y| + |x_j-y| - (1-eps)|x_i-x_j|] reduces to
this; alpha = 1 is fair, alpha = 0 standard). The pair sum uses sorted members,
sum_{i<j} |x_i - x_j| = sum_k (2k - M - 1) x_(k): O(M log M) time and O(M) memory per point.
The energy score is the multivariate analogue over a whole field (grid x variables, per sample
and time), with the scalers as weights of its norm. Everything is computed in float32, also
under mixed precision, and weighted and reduced the same way as the deterministic losses.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from squall.training.losses import reduce_weighted, scaler_weight
from squall.training.scalers import Scaler, select_scalers

KERNEL_KINDS = {"crps": 0.0, "fair_crps": 1.0, "almost_fair_crps": None}  # kind -> alpha
KINDS = (*KERNEL_KINDS, "energy")


def pair_sum(members: torch.Tensor, dim: int) -> torch.Tensor:
    """sum_{i<j} |x_i - x_j| over `dim`, from the sorted members (the dim is reduced)."""
    count = members.shape[dim]
    ordered = members.sort(dim=dim).values
    shape = [1] * members.dim()
    shape[dim] = count
    rank = torch.arange(1, count + 1, device=members.device, dtype=members.dtype).reshape(shape)
    return ((2 * rank - count - 1) * ordered).sum(dim=dim)


def kernel_crps(prediction: torch.Tensor, target: torch.Tensor, alpha: float) -> torch.Tensor:
    """Per-point almost-fair CRPS (alpha=1 fair, alpha=0 standard), member dim 2 kept as size 1."""
    members = prediction.shape[2]
    if members < 2 and alpha > 0:
        raise ValueError(
            f"the fair and almost-fair CRPS need at least 2 members, got {members}: "
            "raise task.ensemble.members or use the standard crps"
        )
    skill = (prediction - target).abs().mean(dim=2, keepdim=True)
    if members == 1:
        return skill
    epsilon = (1.0 - alpha) / members
    spread = pair_sum(prediction, dim=2).unsqueeze(2)
    return skill - (1.0 - epsilon) / (members * (members - 1)) * spread


def energy_score(
    prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, fair: bool = True
) -> torch.Tensor:
    """(B, T, M, G, V) -> (B, T): the energy score of each field, with the norm
    ||d|| = sqrt(sum_{g,v} weight d^2). Fair: the pair term over M(M-1) pairs, else M^2."""
    batch, times, members = prediction.shape[:3]
    root = weight.sqrt()
    fields = (prediction * root).reshape(batch * times, members, -1)
    truth = (target * root).expand(-1, -1, members, -1, -1).reshape(batch * times, members, -1)
    skill = (fields - truth).norm(dim=-1).mean(dim=-1)
    # cdist holds M x M distances per field (not per point): the norm needs whole fields.
    pairs = torch.cdist(fields, fields).sum(dim=(-1, -2))
    denominator = members * (members - 1) if fair else members * members
    spread = pairs / (2 * denominator) if members > 1 else torch.zeros_like(skill)
    return (skill - spread).reshape(batch, times)


class EnsembleLoss(nn.Module):
    """One ensemble loss kind with its scalers: `crps`, `fair_crps`, `almost_fair_crps` (alpha)
    or `energy` (fair)."""

    def __init__(self, kind: str, scalers: list[Scaler], alpha: float = 0.95) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"unknown ensemble loss {kind!r}; choose from {list(KINDS)}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"the almost-fair CRPS alpha must be in [0, 1], got {alpha}")
        if any("ensemble" in scaler.dims for scaler in scalers):
            names = [scaler.name for scaler in scalers if "ensemble" in scaler.dims]
            raise ValueError(f"scalers {names} weigh members, which an ensemble loss compares")
        self.kind = kind
        fixed = KERNEL_KINDS.get(kind)  # crps and fair_crps fix alpha; energy has none
        self.alpha = alpha if fixed is None else fixed
        self.scaler_names = [scaler.name for scaler in scalers]
        self.register_buffer("weight", scaler_weight(scalers), persistent=False)
        # Model sharding (squall.distributed) sets this rank's grid shard: the kernel CRPS is
        # then its shard's part of the whole grid's weighted sum, summed over the shards.
        self.grid_shard = None

    def forward(
        self, prediction: torch.Tensor, target: torch.Tensor, skip: torch.Tensor | None = None
    ) -> torch.Tensor:
        """prediction (B, T, M, G, V), target (B, T, 1, G, V) (or M members that are all the
        truth), skip (like target, bool): points missing in the data add no loss."""
        device_type = prediction.device.type
        with torch.autocast(device_type, enabled=False):
            prediction, target = prediction.float(), target[:, :, :1].float()
            if skip is not None:
                skip = skip[:, :, :1]
                # a missing truth point: every member and the truth agree there, so it adds 0
                target = target.masked_fill(skip, 0.0)
                prediction = prediction.masked_fill(skip, 0.0)
            if self.kind == "energy":
                if self.grid_shard is not None:
                    raise ValueError(
                        "the energy score needs whole fields, which model sharding splits: "
                        "use a kernel CRPS (fair_crps, almost_fair_crps) or num_gpus_per_model: 1"
                    )
                # grid x variable weights make the norm of each field (a weighted mean over
                # the field); their total per output time weighs the times, as for the CRPS
                weight = self.weight.expand(1, target.shape[1], 1, *target.shape[3:])
                per_time = weight.sum(dim=(-1, -2), keepdim=True)
                per_field = energy_score(prediction, target, weight / per_time)  # (B, T)
                times = per_time.reshape(1, -1)
                return (per_field * times / times.sum()).sum(dim=1).mean()
            per_point = kernel_crps(prediction, target, self.alpha)
            if self.grid_shard is None:
                return reduce_weighted(per_point * self.weight, self.weight)
            weight = self.grid_shard.weight(self.weight)
            return self.grid_shard.sum(reduce_weighted(per_point * weight, weight))


def build_ensemble_loss(settings: dict[str, Any], scalers: dict[str, Scaler]) -> EnsembleLoss:
    """`training.loss` of an ensemble task: {name, scalers, alpha}."""
    selection = select_scalers(scalers, settings.get("scalers", ["*"]))
    alpha = settings.get("alpha")
    return EnsembleLoss(settings["name"], selection, 0.95 if alpha is None else alpha)


class _GatherMembers(torch.autograd.Function):
    """All-gather along the member dim. Backward: every rank computed the same loss of the
    gathered ensemble, so the gradients of a rank's members from all ranks are summed: the
    data-parallel mean over the group then gives the gradient of one loss."""

    @staticmethod
    def forward(ctx, local: torch.Tensor, group) -> torch.Tensor:
        ctx.group = group
        ctx.rank = dist.get_rank(group)
        ctx.size = local.shape[2]
        parts = [torch.empty_like(local) for _ in range(dist.get_world_size(group))]
        dist.all_gather(parts, local.contiguous(), group=group)
        return torch.cat(parts, dim=2)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.group)
        start = ctx.rank * ctx.size
        return grad[:, :, start : start + ctx.size], None


def gather_members(local: torch.Tensor, group=None) -> torch.Tensor:
    """(B, T, m, G, V) members of this rank -> (B, T, m x ranks, G, V) of the ensemble group,
    in rank order, differentiable. Every rank must hold the same number of members."""
    if not dist.is_available() or not dist.is_initialized():
        return local
    if dist.get_world_size(group) == 1:
        return local
    return _GatherMembers.apply(local, group)
