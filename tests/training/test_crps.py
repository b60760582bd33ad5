"""Ensemble losses against brute-force numpy over all member pairs, their limits and gradients,
and the member gather over 2 gloo processes against one process."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from squall.training.crps import EnsembleLoss, energy_score, gather_members, kernel_crps, pair_sum
from squall.training.scalers import Scaler


def _brute_almost_fair(members: np.ndarray, truth: float, alpha: float) -> float:
    """1/(2M(M-1)) sum_{i!=j} [|x_i-y| + |x_j-y| - (1-eps)|x_i-x_j|], eps = (1-alpha)/M."""
    m = len(members)
    epsilon = (1 - alpha) / m
    total = 0.0
    for i, j in itertools.permutations(range(m), 2):
        total += (
            abs(members[i] - truth)
            + abs(members[j] - truth)
            - (1 - epsilon) * abs(members[i] - members[j])
        )
    return total / (2 * m * (m - 1))


def _brute_kernel(members: np.ndarray, truth: float, c: float) -> float:
    """(1/M) sum_j |x_j - y| - c sum_{i<j} |x_i - x_j|."""
    pairs = sum(abs(a - b) for a, b in itertools.combinations(members, 2))
    return float(np.mean(np.abs(members - truth)) - c * pairs)


@pytest.fixture
def ensemble():
    generator = torch.Generator().manual_seed(0)
    prediction = torch.randn(2, 3, 5, 7, 4, generator=generator, dtype=torch.float64)
    target = torch.randn(2, 3, 1, 7, 4, generator=generator, dtype=torch.float64)
    return prediction, target


def test_pair_sum_matches_all_pairs(ensemble):
    prediction, _ = ensemble
    ours = pair_sum(prediction, dim=2).numpy()
    x = prediction.numpy()
    brute = sum(np.abs(x[:, :, i] - x[:, :, j]) for i, j in itertools.combinations(range(5), 2))
    np.testing.assert_allclose(ours, brute, rtol=1e-12)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.95, 1.0])
def test_kernel_crps_matches_brute_force(ensemble, alpha):
    prediction, target = ensemble
    ours = kernel_crps(prediction, target, alpha)[:, :, 0].numpy()
    x, y = prediction.numpy(), target.numpy()[:, :, 0]
    for index in np.ndindex(*y.shape):
        b, t, g, v = index
        expected = _brute_almost_fair(x[b, t, :, g, v], y[index], alpha)
        assert ours[index] == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_alpha_limits_are_fair_and_standard(ensemble):
    prediction, target = ensemble
    m = prediction.shape[2]
    x, y = prediction.numpy()[0, 0, :, 0, 0], float(target[0, 0, 0, 0, 0])
    fair = _brute_kernel(x, y, 1 / (m * (m - 1)))
    standard = _brute_kernel(x, y, 1 / m**2)
    assert float(kernel_crps(prediction, target, 1.0)[0, 0, 0, 0, 0]) == pytest.approx(fair)
    assert float(kernel_crps(prediction, target, 0.0)[0, 0, 0, 0, 0]) == pytest.approx(standard)
    assert fair != pytest.approx(standard)
    # the loss kinds pick the same alphas
    for kind, c in (("fair_crps", 1 / (m * (m - 1))), ("crps", 1 / m**2)):
        loss = EnsembleLoss(kind, [])(prediction[:1, :1, :, :1, :1], target[:1, :1, :, :1, :1])
        assert float(loss) == pytest.approx(_brute_kernel(x, y, c), rel=1e-6)


def test_one_member_crps_is_the_absolute_error_and_fair_needs_two():
    prediction, target = torch.tensor([1.5]).reshape(1, 1, 1, 1, 1), torch.zeros(1, 1, 1, 1, 1)
    assert float(kernel_crps(prediction, target, 0.0)) == 1.5
    with pytest.raises(ValueError, match="at least 2 members"):
        kernel_crps(prediction, target, 1.0)


def test_scalers_weigh_points_like_the_deterministic_losses(ensemble):
    prediction, target = (t.float() for t in ensemble)
    area = Scaler("area", ("grid",), torch.arange(1.0, 8.0))
    variables = Scaler("variable_weights", ("variable",), torch.tensor([1.0, 2.0, 0.0, 0.5]))
    loss = EnsembleLoss("almost_fair_crps", [area, variables], alpha=0.95)(prediction, target)
    per_point = kernel_crps(prediction, target, 0.95)[:, :, 0]  # (B, T, G, V)
    grid_weights = (area.values / area.values.sum())[:, None]
    expected = (per_point * grid_weights * variables.values).mean(-1).sum(-1).mean()
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)


def test_missing_truth_points_add_nothing(ensemble):
    prediction, target = (t.float() for t in ensemble)
    skip = torch.zeros_like(target, dtype=torch.bool)
    skip[..., 3, :] = True
    loss = EnsembleLoss("fair_crps", [])
    changed = prediction.clone()
    changed[..., 3, :] += 100.0
    assert float(loss(prediction, target, skip)) == pytest.approx(
        float(loss(changed, target, skip))
    )


def test_energy_score_matches_brute_force(ensemble):
    prediction, target = ensemble
    weight = torch.rand(1, 1, 1, 7, 4, dtype=torch.float64)
    ours = energy_score(prediction, target, weight).numpy()
    w = np.sqrt(weight.numpy()[0, 0, 0])
    for b, t in np.ndindex(2, 3):
        x, y = prediction.numpy()[b, t] * w, target.numpy()[b, t, 0] * w
        m = len(x)
        skill = np.mean([np.linalg.norm(member - y) for member in x])
        pairs = sum(np.linalg.norm(x[i] - x[j]) for i, j in itertools.permutations(range(m), 2))
        assert ours[b, t] == pytest.approx(skill - pairs / (2 * m * (m - 1)), rel=1e-9)


def test_gradients_reach_every_member_in_float32_under_autocast(ensemble):
    prediction, target = (t.float() for t in ensemble)
    prediction = prediction.to(torch.bfloat16).requires_grad_()
    for kind in ("almost_fair_crps", "energy"):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = EnsembleLoss(kind, [])(prediction, target)
        assert loss.dtype == torch.float32
        (grad,) = torch.autograd.grad(loss, prediction)
        per_member = grad.float().abs().sum(dim=(0, 1, 3, 4))
        assert (per_member > 0).all(), kind


def test_a_sharper_ensemble_around_the_truth_scores_better(ensemble):
    _, target = (t.float() for t in ensemble)
    noise = torch.randn(2, 3, 8, 7, 4, generator=torch.Generator().manual_seed(1))
    loss = EnsembleLoss("fair_crps", [])
    assert loss(target + 0.1 * noise, target) < loss(target + 1.0 * noise, target)


def _gathered_worker(rank: int, world: int, init: str, prediction, target, out: dict) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        size = prediction.shape[2] // world
        local = prediction[:, :, rank * size : (rank + 1) * size].clone().requires_grad_()
        ensemble = gather_members(local)
        loss = EnsembleLoss("almost_fair_crps", [])(ensemble, target)
        loss.backward()
        out[rank] = (float(loss), local.grad.clone())
    finally:
        dist.destroy_process_group()


def test_members_gathered_over_two_gloo_ranks_match_one_process(ensemble, tmp_path):
    prediction, target = (t.float() for t in ensemble)
    prediction = torch.cat([prediction, prediction[:, :, :1] + 0.5], dim=2)  # 6 members
    single = prediction.clone().requires_grad_()
    expected = EnsembleLoss("almost_fair_crps", [])(single, target)
    expected.backward()

    with mp.Manager() as manager:
        out = manager.dict()
        init = f"file://{tmp_path / 'rendezvous'}"
        mp.spawn(_gathered_worker, args=(2, init, prediction, target, out), nprocs=2)
        results = dict(out)
    for rank in (0, 1):
        loss, grad = results[rank]
        assert loss == pytest.approx(float(expected.detach()), rel=1e-6)
        # each rank holds its copy of the loss; the group's gradients are summed, and the
        # data-parallel mean over the 2 ranks gives back the gradient of one loss
        torch.testing.assert_close(grad / 2, single.grad[:, :, rank * 3 : (rank + 1) * 3])
