"""Grid shards balanced by edges (system.hardware.shard_balance: edges): contiguous ranges that
cover every node once and even out the edge load of uneven meshes, with the same loss and
gradients as one process (gloo, 2 and 4 processes)."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from sharding_cases import (
    assert_matches_one_process,
    build_model,
    build_task,
    run_forked,
    sharded_worker,
    uneven_graph,
    whole_task,
)

from squall.distributed.edge_sharding import balanced_ranges
from squall.distributed.grid_sharding import shard_layout, shard_loads

EDGE_CASES = {
    f"{case}_edges": partial(build_task, case, shard_balance="edges")
    for case in ("gnn", "transformer")
}


def _covers_in_order(ranges: list[tuple[int, int]], num_nodes: int) -> bool:
    """Contiguous, non-empty ranges that cover every node once (in any rank order)."""
    ordered = sorted(ranges)
    return (
        ordered[0][0] == 0
        and ordered[-1][1] == num_nodes
        and all(start < end for start, end in ordered)
        and all(a[1] == b[0] for a, b in zip(ordered, ordered[1:], strict=False))
    )


def test_an_edge_balanced_split_evens_out_the_load_of_uneven_degrees():
    network = build_model({"processor": "gnn", "mapper": "gnn"}, uneven_graph()).network
    for shards in (2, 4):
        points = shard_loads(network, *shard_layout(network, shards, "points"))
        data, hidden = shard_layout(network, shards, "edges")
        assert _covers_in_order(data, network.num_data_nodes)
        assert _covers_in_order(hidden, network.num_hidden_nodes)
        edges = shard_loads(network, data, hidden)
        assert sum(edges) == sum(points)
        assert max(edges) / min(edges) < max(points) / min(points), (shards, points, edges)
    # one heavy node is a shard of its own; every shard keeps a node
    assert balanced_ranges(torch.tensor([100, 1, 1, 1, 1]), 3) == [(0, 1), (1, 3), (3, 5)]
    assert balanced_ranges(torch.tensor([0, 0, 9, 0]), 4) == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert balanced_ranges(torch.zeros(6), 2) == [(0, 3), (3, 6)]


def test_an_unknown_balance_is_refused_clearly():
    network = build_model({"processor": "gnn", "mapper": "gnn"}).network
    with pytest.raises(ValueError, match="shard_balance='nodes' is not one of"):
        shard_layout(network, 2, "nodes")


@pytest.fixture(scope="module")
def reference() -> dict[str, tuple[float, dict[str, torch.Tensor]]]:
    return {case: whole_task(build()) for case, build in EDGE_CASES.items()}


@pytest.mark.parametrize(("world", "layouts"), [(2, [2]), (4, [4])])
def test_edge_balanced_shards_match_one_process(reference, tmp_path, world, layouts):
    ranks = run_forked(partial(sharded_worker, cases=EDGE_CASES), world, layouts, tmp_path)
    for shards in layouts:
        for case, expected in reference.items():
            assert_matches_one_process(ranks, (shards, case), shards, expected)
