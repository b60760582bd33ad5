"""The inference artifact: weights.safetensors + metadata.json, loadable without any pickle.

The safetensors file holds the network weights (with the normalisation statistics as buffers)
and the graph's tensors under `graph/...`; metadata.json holds everything else as plain JSON.
"""

from __future__ import annotations

import json
import os
import shutil
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch_geometric.data import HeteroData

from squall.models.interface import ForecastModel

FORMAT = "squall-model/1"
WEIGHTS = "weights.safetensors"
METADATA = "metadata.json"
_GRAPH = "graph/"
_EDGE_SEPARATOR = "|"


def _versions() -> dict[str, str]:
    versions = {}
    for package in ("squall", "torch", "torch-geometric", "pytorch-lightning", "safetensors"):
        try:
            versions[package] = package_metadata.version(package)
        except package_metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def graph_tensors(graph: HeteroData) -> dict[str, torch.Tensor]:
    """Flatten a HeteroData into `graph/<node set or src|rel|dst>/<attribute>` tensors."""
    flat = {}
    for store in graph.node_stores + graph.edge_stores:
        key = store._key if isinstance(store._key, str) else _EDGE_SEPARATOR.join(store._key)
        for attribute, value in store.items():
            if isinstance(value, torch.Tensor):
                flat[f"{_GRAPH}{key}/{attribute}"] = value.contiguous()
    return flat


def graph_from_tensors(tensors: dict[str, torch.Tensor]) -> HeteroData:
    graph = HeteroData()
    for name, value in tensors.items():
        if not name.startswith(_GRAPH):
            continue
        key, attribute = name[len(_GRAPH) :].rsplit("/", 1)
        store_key = tuple(key.split(_EDGE_SEPARATOR)) if _EDGE_SEPARATOR in key else key
        graph[store_key][attribute] = value
    return graph


def write_artifact(
    model: ForecastModel,
    graph: HeteroData,
    statistics: dict[str, list[float]],
    out_dir: str | Path,
    provenance: dict[str, Any],
) -> Path:
    """Write the artifact directory atomically (temporary directory, then rename)."""
    out_dir = Path(out_dir)
    temporary = out_dir.with_name(f"{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    weights = {
        name: value.detach().cpu().contiguous() for name, value in model.state_dict().items()
    }
    save_file({**weights, **graph_tensors(graph)}, str(temporary / WEIGHTS))
    spec = model.spec
    metadata = {
        "format": FORMAT,
        "model_spec": spec,
        "variables": {
            "all": spec["variables"],
            "input": model.input_variables,
            "output": model.output_variables,
            "forcing": spec["forcing"],
            "diagnostic": spec["diagnostic"],
            "computed_forcings": spec["computed_forcings"],
        },
        "timestep_seconds": spec["timestep_seconds"],
        "input_steps": spec["input_steps"],
        "statistics": statistics,
        "graph": {
            "node_sets": {k: int(graph[k].num_nodes) for k in graph.node_types},
            "edge_sets": {
                _EDGE_SEPARATOR.join(k): int(graph[k].edge_index.shape[1]) for k in graph.edge_types
            },
        },
        "parameters": sum(p.numel() for p in model.parameters()),
        "versions": _versions(),
        **provenance,
    }
    (temporary / METADATA).write_text(json.dumps(metadata, indent=2))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(temporary, out_dir)
    return out_dir


def read_metadata(artifact: str | Path) -> dict[str, Any]:
    path = Path(artifact) / METADATA
    if not path.is_file():
        raise FileNotFoundError(
            f"{artifact} is not a squall model (no {METADATA}); make one with `squall export`"
        )
    metadata = json.loads(path.read_text())
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{artifact} has format {metadata.get('format')!r}; expected {FORMAT}")
    return metadata


def load_artifact(artifact: str | Path, device: str = "cpu") -> tuple[ForecastModel, dict]:
    """Rebuild the model from the artifact: safetensors + JSON only, no training code."""
    metadata = read_metadata(artifact)
    tensors = load_file(str(Path(artifact) / WEIGHTS), device=device)
    graph = graph_from_tensors(tensors)
    model = ForecastModel(graph, metadata["model_spec"], metadata["statistics"])
    weights = {k: v for k, v in tensors.items() if not k.startswith(_GRAPH)}
    model.load_state_dict(weights, strict=True)
    return model.to(device).eval(), metadata


def summary(artifact: str | Path) -> str:
    metadata = read_metadata(artifact)
    variables = metadata["variables"]
    lines = [
        f"squall model {artifact} ({metadata['format']})",
        f"  parameters: {metadata['parameters']:,}",
        f"  timestep: {metadata['timestep_seconds'] // 3600} h, input steps: "
        f"{metadata['input_steps']}",
        f"  inputs: {', '.join(variables['input'])}",
        f"  outputs: {', '.join(variables['output'])}",
        f"  computed forcings: {', '.join(variables['computed_forcings']) or 'none'}",
        f"  graph: {metadata['graph']['node_sets']}",
        f"  lineage: {metadata.get('lineage', {})}",
        f"  training run: {metadata.get('training', {})}",
        f"  versions: {metadata['versions']}",
    ]
    return "\n".join(lines)
