"""How close model sharding of the limited-area and the diffusion forecaster and of the
hierarchical processor comes to one process: the margins behind the tolerances of
tests/distributed/test_method_sharding.py.

Runs the test's own cases (tests/distributed/method_cases.py: the tiny model of sharding_cases,
37 points, batch 4, fp32; the limited-area GNN and the hierarchical GNN and graph transformer
rolled out 2 steps, the diffusion graph transformer and transformer one denoising step) whole in
this process, then over 2 and 4
forked gloo ranks in each layout of num_gpus_per_model, and prints one `RESULT {json}` line per
world size: per layout and case, the relative difference of the replica-mean loss and the
largest relative L2 difference of a parameter's gradient on any rank.

Usage: python benchmarks/distributed/method_equivalence.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from functools import partial
from pathlib import Path

import torch

TESTS = Path(__file__).resolve().parents[2] / "tests"
sys.path[:0] = [str(TESTS / "distributed"), str(TESTS)]

from method_cases import CASES  # noqa: E402
from sharding_cases import run_forked, sharded_worker, whole_task  # noqa: E402

LAYOUTS = {2: [2], 4: [4, 2]}  # num_gpus_per_model in each world size, as the test runs them


def margins(world: int, reference: dict) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as out:
        ranks = run_forked(partial(sharded_worker, cases=CASES), world, LAYOUTS[world], Path(out))
    found = {}
    for shards in LAYOUTS[world]:
        replicas = world // shards
        for case, (loss, gradients) in reference.items():
            key = (shards, case)
            mean = sum(ranks[r * shards][key][0] for r in range(replicas)) / replicas
            gradient_error = max(
                float((rank[key][1][name] - expected).norm() / expected.norm())
                for rank in ranks
                for name, expected in gradients.items()
            )
            found[f"model {shards}: {case}"] = {
                "loss_rel": abs(mean - loss) / abs(loss),
                "gradient_rel_l2": gradient_error,
            }
    return found


def main() -> None:
    torch.set_num_threads(1)
    reference = {case: whole_task(build()) for case, build in CASES.items()}
    for world in LAYOUTS:
        print("RESULT", json.dumps({"world": world, "layouts": margins(world, reference)}))


if __name__ == "__main__":
    main()
