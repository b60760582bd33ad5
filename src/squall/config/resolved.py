"""Read and write the resolved config (YAML), atomically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml


def write_resolved(config: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(
        "# Written by `squall config validate`: the full config a training runs with.\n"
        + yaml.safe_dump(config, sort_keys=False)
    )
    os.replace(temporary, path)
    return path


def read_resolved(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no resolved config at {path}; write one with `squall config validate --out {path}`"
        )
    return yaml.safe_load(path.read_text())
