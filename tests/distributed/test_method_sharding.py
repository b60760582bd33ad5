"""Model sharding of the limited-area forecaster, the diffusion forecaster and the hierarchical
processor on CPU (gloo): 2 and 4 processes, in each layout of num_gpus_per_model, give the loss
and the gradients of one process on the same samples; the diffusion noise does not depend on
the sharding."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from method_cases import CASES, hierarchical
from sharding_cases import (
    assert_matches_one_process,
    batch,
    run_forked,
    sharded_worker,
    whole_task,
)

from squall.distributed.grid_sharding import GridSharding
from squall.distributed.groups import ModelGroups
from squall.distributed.lightning import shard_task


@pytest.fixture(scope="module")
def reference() -> dict[str, tuple[float, dict[str, torch.Tensor]]]:
    return {case: whole_task(build()) for case, build in CASES.items()}


@pytest.mark.parametrize(("world", "layouts"), [(2, [2]), (4, [4, 2])])
def test_sharded_methods_match_one_process(reference, tmp_path, world, layouts):
    ranks = run_forked(partial(sharded_worker, cases=CASES), world, layouts, tmp_path)
    for shards in layouts:
        for case, expected in reference.items():
            assert_matches_one_process(ranks, (shards, case), shards, expected)


def test_a_grid_shard_draws_its_slice_of_the_same_diffusion_noise():
    whole, shard = CASES["diffusion_transformer"](), CASES["diffusion_transformer"]()
    points = shard_task(shard, ModelGroups(rank=1, world_size=2, shards=2, group=None)).data_points
    sample = batch()
    target = torch.zeros(4, 1, 37, 3)
    sigma, noise = whole.draw_noise(sample, target)
    shard_sigma, shard_noise = shard.draw_noise(sample, target[:, :, points])
    torch.testing.assert_close(shard_sigma, sigma, rtol=0, atol=0)
    torch.testing.assert_close(shard_noise, noise[:, :, points], rtol=0, atol=0)
    assert len(set(sigma.flatten().tolist())) == sigma.numel()  # each sample its own level
    # validation draws the same noise every epoch, training afresh at every step
    validation = whole.eval().draw_noise(sample, target)
    torch.testing.assert_close(validation, whole.draw_noise(sample, target))
    assert not torch.equal(validation[1], noise)


def test_a_hierarchy_level_smaller_than_the_group_is_refused_clearly():
    network = hierarchical("gnn").model.network  # its coarsest level has 7 nodes
    with pytest.raises(ValueError, match="'hidden_3' has 7 nodes, fewer than num_gpus_per_model=8"):
        GridSharding(network, ModelGroups(rank=0, world_size=8, shards=8, group=None))
