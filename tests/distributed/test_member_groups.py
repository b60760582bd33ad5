"""Ensemble groups (system.hardware.num_gpus_per_ensemble): the ranks' places, the checks, the
member noise, and on CPU (gloo) 2 and 4 processes with the members spread give the loss and the
gradients of one process holding them all, alone and beside data parallelism."""

from __future__ import annotations

import pytest
import torch
from member_cases import CASES, MEMBERS, build_task, member_worker, whole
from pydantic import ValidationError
from sharding_cases import ROLLOUT, assert_matches_one_process, batch, run_forked

from squall.config.schema import HardwareConfig
from squall.distributed.groups import MemberGroups, ModelGroups, member_groups
from squall.distributed.lightning import shard_task


def test_ranks_are_numbered_by_ensemble_group_then_member_part_then_shard():
    # 8 ranks, ensemble groups of 4 holding model groups of 2: rank 6 is shard 0 of part 1
    groups = MemberGroups(rank=6, world_size=8, ranks_per_model=2, parts=2, group=None)
    assert (groups.replica, groups.replicas, groups.part) == (1, 2, 1)
    assert groups.members(6) == range(3, 6)
    with pytest.raises(ValueError, match="members=5 does not split over the 2 member parts"):
        groups.members(5)


def test_ensemble_groups_must_fill_the_world_with_whole_model_groups():
    with pytest.raises(ValidationError, match="num_gpus_per_ensemble=3 must divide the 4"):
        HardwareConfig(devices=4, num_gpus_per_ensemble=3)
    with pytest.raises(ValidationError, match="multiple of num_gpus_per_model=4"):
        HardwareConfig(devices=8, num_gpus_per_model=4, num_gpus_per_ensemble=2)
    assert HardwareConfig(devices=4, num_nodes=2, num_gpus_per_ensemble=8).num_gpus_per_ensemble
    with pytest.raises(RuntimeError, match="torch.distributed initialised"):
        member_groups(2, 1, 2, 0)
    assert member_groups(1, 1, 1, 0).group is None


def test_a_member_draws_the_same_noise_wherever_it_is_computed():
    whole_task, part = build_task("gnn"), build_task("gnn")
    part.spread_members(MemberGroups(rank=1, world_size=2, ranks_per_model=1, parts=2, group=None))
    sample = batch()
    everyone = whole_task._member_noise(sample, ROLLOUT).unflatten(1, (-1, MEMBERS))
    mine = part._member_noise(sample, ROLLOUT).unflatten(1, (-1, MEMBERS // 2))
    torch.testing.assert_close(mine, everyone[:, :, MEMBERS // 2 :], rtol=0, atol=0)
    # members, samples and steps differ; the next training step draws afresh
    assert len({tuple(row.tolist()) for row in everyone.reshape(-1, 3)}) == everyone[..., 0].numel()
    validation = whole_task.eval()._member_noise(sample, ROLLOUT)
    assert not torch.equal(validation.unflatten(1, (-1, MEMBERS)), everyone)
    torch.testing.assert_close(validation, whole_task._member_noise(sample, ROLLOUT))


def test_what_the_ensemble_cannot_shard_is_refused_clearly():
    groups = ModelGroups(rank=0, world_size=2, shards=2, group=None)
    with pytest.raises(ValueError, match="ensemble forecaster with a kernel CRPS, not for "):
        shard_task(build_task("graphtransformer_energy"), groups)
    task = build_task("gnn")
    sharding = shard_task(task, groups)
    shard = torch.zeros(1, sharding.data_points.stop, task.model.network.spec["in_channels"])
    with pytest.raises(ValueError, match="the ensemble noise must be given"):
        task.model.network(shard)


@pytest.fixture(scope="module")
def reference() -> dict[str, tuple[float, dict[str, torch.Tensor]]]:
    return {case: whole(case) for case in CASES}


# (num_gpus_per_ensemble, num_gpus_per_model). World 2: members over 2 ranks; 2 grid shards of
# one ensemble; pure data parallel. World 4: members over 4 ranks; 2 replicas x members over 2
# ranks; members over 2 ranks x 2 grid shards; 2 replicas x 2 grid shards.
LAYOUTS = {2: [(2, 1), (2, 2), (1, 1)], 4: [(4, 1), (2, 1), (4, 2), (2, 2)]}


@pytest.mark.parametrize("world", [2, 4])
def test_spread_members_match_one_process(reference, tmp_path, world):
    ranks = run_forked(member_worker, world, LAYOUTS[world], tmp_path)
    compared = 0
    for layout in LAYOUTS[world]:
        for case, expected in reference.items():
            if (layout, case) in ranks[0]:  # not the energy score on grid shards: refused
                # every rank of an ensemble group scores the whole ensemble of its samples
                assert_matches_one_process(ranks, (layout, case), max(layout), expected)
                compared += 1
    with_shards = sum(layout[1] > 1 for layout in LAYOUTS[world])
    assert compared == len(LAYOUTS[world]) * len(reference) - with_shards
