"""How close ensemble groups (and grid shards of an ensemble) come to one process: the margins
behind the tolerances of tests/distributed/test_member_groups.py.

Runs the test's own cases (tests/distributed/member_cases.py: a tiny ensemble forecaster, 4
members, batch 4, rollout 2, fp32) whole in this process, then over 2 and 4 forked gloo ranks in
each layout, and prints one `RESULT {json}` line per world size: per layout, the largest relative
difference of a replica-mean loss and the largest relative L2 difference of a parameter's
gradient on any rank.

Usage: python benchmarks/distributed/member_equivalence.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import torch

TESTS = Path(__file__).resolve().parents[2] / "tests"
sys.path[:0] = [str(TESTS / "distributed"), str(TESTS)]

from member_cases import CASES, member_worker, whole  # noqa: E402
from sharding_cases import run_forked  # noqa: E402
from test_member_groups import LAYOUTS  # noqa: E402


def margins(world: int, reference: dict) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as out:
        ranks = run_forked(member_worker, world, LAYOUTS[world], Path(out))
    found = {}
    for layout in LAYOUTS[world]:
        per_replica = max(layout)
        replicas = world // per_replica
        loss_error = gradient_error = 0.0
        for case, (loss, gradients) in reference.items():
            if (layout, case) not in ranks[0]:
                continue
            mean = sum(ranks[r * per_replica][(layout, case)][0] for r in range(replicas))
            loss_error = max(loss_error, abs(mean / replicas - loss) / abs(loss))
            for rank in ranks:
                for name, expected in gradients.items():
                    difference = (rank[(layout, case)][1][name] - expected).norm()
                    gradient_error = max(gradient_error, float(difference / expected.norm()))
        name = f"ensemble {layout[0]} x model {layout[1]}"
        found[name] = {"loss_rel": loss_error, "gradient_rel_l2": gradient_error}
    return found


def main() -> None:
    torch.set_num_threads(1)
    reference = {case: whole(case) for case in CASES}
    for world in LAYOUTS:
        print("RESULT", json.dumps({"world": world, "layouts": margins(world, reference)}))


if __name__ == "__main__":
    main()
