"""Model sharding and data parallelism on CPU (gloo): 2 and 4 processes, each layout of
num_gpus_per_model, give the loss and the gradients of one process on the same samples."""

from __future__ import annotations

import pytest
import torch
from sharding_cases import CASES, assert_matches_one_process, run_forked, sharded_worker, whole


@pytest.fixture(scope="module")
def reference() -> dict[str, tuple[float, dict[str, torch.Tensor]]]:
    return {case: whole(case) for case in CASES}


@pytest.mark.parametrize(("world", "layouts"), [(2, [2, 1]), (4, [4, 2])])
def test_sharded_runs_match_one_process(reference, tmp_path, world, layouts):
    ranks = run_forked(sharded_worker, world, layouts, tmp_path)
    for shards in layouts:
        for case, expected in reference.items():
            assert_matches_one_process(ranks, (shards, case), shards, expected)
