"""Content hashes of a run's inputs, recorded in the resolved config, checkpoints and exports."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import zarr


def file_hash(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def dataset_hash(path: str | Path) -> str:
    """Hash of a zarr dataset's metadata and dates (not its data: that would read it all)."""
    group = zarr.open_group(str(path), mode="r")
    digest = hashlib.sha256()
    digest.update(json.dumps(dict(group.attrs), sort_keys=True, default=str).encode())
    digest.update(np.asarray(group["dates"][:]).astype("datetime64[s]").tobytes())
    return digest.hexdigest()[:16]


def input_lineage(dataset: str, graph: str, statistics: str) -> dict[str, str]:
    return {
        "dataset": dataset_hash(dataset),
        "graph": file_hash(graph),
        "statistics": file_hash(statistics),
    }


def check_lineage(recorded: dict[str, str], current: dict[str, str], allow: bool = False) -> None:
    """Refuse to go on when an input changed since the config was validated."""
    changed = [key for key in recorded if key in current and recorded[key] != current[key]]
    if changed and not allow:
        details = ", ".join(f"{k}: recorded {recorded[k]}, now {current[k]}" for k in changed)
        raise ValueError(
            f"inputs changed since this config was validated ({details}); rerun "
            "`squall config validate` (or the pipeline), or pass --allow-lineage-mismatch"
        )
