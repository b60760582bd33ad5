"""AdEMAMix against its definition: with alpha = 0 the slow momentum is off and it is AdamW."""

from __future__ import annotations

import torch

from squall.training.ademamix import AdEMAMix, _beta3_at


def _run(optimizer_class, **options) -> torch.Tensor:
    torch.manual_seed(0)
    weights = torch.nn.Parameter(torch.randn(5, 3))
    optimizer = optimizer_class([weights], lr=0.01, weight_decay=0.1, **options)
    for step in range(20):
        optimizer.zero_grad()
        loss = ((weights - step * 0.1) ** 2).sum()
        loss.backward()
        optimizer.step()
    return weights.detach()


def test_alpha_zero_is_adamw():
    adamw = _run(torch.optim.AdamW, betas=(0.9, 0.999), eps=1e-8)
    ademamix = _run(AdEMAMix, betas=(0.9, 0.999, 0.9999), alpha=0.0, eps=1e-8)
    torch.testing.assert_close(ademamix, adamw, rtol=1e-5, atol=1e-6)


def test_slow_momentum_changes_the_path_and_ramps_up():
    assert not torch.allclose(_run(AdEMAMix, alpha=5.0), _run(AdEMAMix, alpha=0.0))
    # beta3 goes from beta1 at step 0 to beta3 at the end of the warm-up
    assert abs(_beta3_at(0, 0.9, 0.9999, 100) - 0.9) < 1e-12
    assert _beta3_at(50, 0.9, 0.9999, 100) < 0.9999
    assert _beta3_at(100, 0.9, 0.9999, 100) == 0.9999
