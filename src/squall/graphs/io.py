"""Graph files: pickle-free save/load with the hash of the grid the graph was built for."""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_geometric.data import HeteroData

GRAPH_FORMAT = "squall-graph/1"


def _plain(value: Any, key: str) -> Any:
    """Config value as a plain Python object: weights_only loading refuses numpy scalars."""
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_plain(item, key) for item in value]
    if isinstance(value, dict):
        return {str(name): _plain(item, f"{key}.{name}") for name, item in value.items()}
    raise ValueError(
        f"graph config value {key}={value!r} is not a plain number, string or list; "
        "pass plain values so the graph file stays loadable without pickles"
    )


def save_graph(
    graph: HeteroData,
    path: str | os.PathLike[str],
    *,
    coordinates_hash: str,
    config: dict[str, Any],
) -> Path:
    """Write `graph` to `path` atomically, with the grid's coordinates hash and build config.

    The file holds only plain containers and tensors (HeteroData.to_dict()), so it loads with
    torch.load(weights_only=True): no pickled classes that break on a library upgrade.
    A temporary file in the same directory is renamed over `path`, so readers never see a
    half-written graph, even if the process dies mid-write.
    """
    if not isinstance(coordinates_hash, str) or not coordinates_hash:
        raise ValueError("save_graph needs the coordinates hash of the grid the graph was built on")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": GRAPH_FORMAT,
        "graph": graph.to_dict(),
        "coordinates_hash": coordinates_hash,
        "config": {str(key): _plain(value, key) for key, value in config.items()},
    }
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save(payload, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def load_graph(
    path: str | os.PathLike[str], expected_coordinates_hash: str | None = None
) -> tuple[HeteroData, dict[str, Any]]:
    """Read a graph file; returns (graph, info) with info = {format, coordinates_hash, config,
    path}. If `expected_coordinates_hash` is given, refuse a graph built for another grid."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"graph file {path} does not exist; build it with `squall graph create`"
        )
    try:
        # weights_only=True: never run pickled code from a file (unlike PyG's torch_load,
        # which silently retries with full pickles).
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        raise ValueError(
            f"{path} is not a readable squall graph file ({error}); rebuild it with "
            "`squall graph create`"
        ) from error
    if not isinstance(payload, dict) or payload.get("format") != GRAPH_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(
            f"{path} is not a {GRAPH_FORMAT} graph file (found format {found!r}); rebuild it "
            "with `squall graph create`"
        )
    stored_hash = payload["coordinates_hash"]
    if expected_coordinates_hash is not None and stored_hash != expected_coordinates_hash:
        raise ValueError(
            f"graph file {path} was built for a grid with coordinates hash {stored_hash}, but "
            f"the dataset has coordinates hash {expected_coordinates_hash}; rebuild the graph "
            "for this dataset with `squall graph create`"
        )
    graph = HeteroData.from_dict(payload["graph"])
    info = {
        "format": payload["format"],
        "coordinates_hash": stored_hash,
        "config": payload["config"],
        "path": str(path),
    }
    return graph, info
