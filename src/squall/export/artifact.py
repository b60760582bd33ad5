"""The inference artifact: weights.safetensors + metadata.json, loadable without any pickle.

The safetensors file holds the network weights (with the normalisation statistics as buffers)
and the graph's tensors under `graph/...`; metadata.json holds everything else as plain JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save_file
from torch_geometric.data import HeteroData

from squall.models.interface import ForecastModel
from squall.models.multi_dataset import is_multi_dataset, model_from_spec

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


def _metadata(
    model: ForecastModel,
    graph: HeteroData,
    statistics: dict[str, list[float]],
    provenance: dict[str, Any],
    coordinates_hash: str,
) -> dict[str, Any]:
    spec = model.spec
    return {
        "format": FORMAT,
        "model_spec": spec,
        "variables": model.variables_summary()  # several datasets: per dataset
        if is_multi_dataset(spec)
        else {
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
            "coordinates_hash": coordinates_hash,  # of the data grid the model was trained on
            "node_sets": {k: int(graph[k].num_nodes) for k in graph.node_types},
            "edge_sets": {
                _EDGE_SEPARATOR.join(k): int(graph[k].edge_index.shape[1]) for k in graph.edge_types
            },
        },
        "parameters": sum(p.numel() for p in model.parameters()),
        "versions": _versions(),
        **provenance,
    }


def write_artifact(
    model: ForecastModel,
    graph: HeteroData,
    statistics: dict[str, list[float]],
    out_dir: str | Path,
    provenance: dict[str, Any],
    coordinates_hash: str,
) -> Path:
    """Write the artifact directory atomically: a complete temporary directory is swapped in,
    and an existing artifact is only removed once the new one is in place."""
    out_dir = Path(out_dir)
    temporary = out_dir.with_name(f"{out_dir.name}.tmp-{os.getpid()}")
    previous = out_dir.with_name(f"{out_dir.name}.old-{os.getpid()}")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    try:
        weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file({**weights, **graph_tensors(graph)}, str(temporary / WEIGHTS))
        metadata = _metadata(model, graph, statistics, provenance, coordinates_hash)
        (temporary / METADATA).write_text(json.dumps(metadata, indent=2))
        if out_dir.exists():
            os.replace(out_dir, previous)
        try:
            os.replace(temporary, out_dir)
        except BaseException:
            if previous.exists():
                os.replace(previous, out_dir)  # put the old artifact back
            raise
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
        shutil.rmtree(previous, ignore_errors=True)
    return out_dir


def _read_member(artifact: Path, name: str) -> bytes:
    """A file of the artifact, from its directory or from its single-file zip."""
    if artifact.is_dir():
        path = artifact / name
        if not path.is_file():
            raise FileNotFoundError(
                f"{artifact} is not a squall model (no {name}); make one with `squall export`"
            )
        return path.read_bytes()
    if zipfile.is_zipfile(artifact):
        with zipfile.ZipFile(artifact) as archive:
            if name not in archive.namelist():
                raise FileNotFoundError(f"{artifact} holds no {name}; re-export the model")
            return archive.read(name)
    raise FileNotFoundError(
        f"{artifact} is neither a model directory nor a model zip; make one with `squall export`"
    )


def read_metadata(artifact: str | Path) -> dict[str, Any]:
    metadata = json.loads(_read_member(Path(artifact), METADATA))
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{artifact} has format {metadata.get('format')!r}; expected {FORMAT}")
    return metadata


def load_artifact(artifact: str | Path, device: str = "cpu") -> tuple[ForecastModel, dict]:
    """Rebuild the model from a model directory or zip: safetensors + JSON, no pickle, and no
    training code."""
    metadata = read_metadata(artifact)
    tensors = load_safetensors(_read_member(Path(artifact), WEIGHTS))
    graph = graph_from_tensors(tensors)
    # a diffusion model's spec carries its sampler settings
    model = model_from_spec(graph, metadata["model_spec"], metadata["statistics"])
    weights = {k: v for k, v in tensors.items() if not k.startswith(_GRAPH)}
    model.load_state_dict(weights, strict=True)
    return model.to(device).eval(), metadata


def read_graph(artifact: str | Path) -> HeteroData:
    """The graph stored in a model directory or zip (for its area weights and coordinates)."""
    return graph_from_tensors(load_safetensors(_read_member(Path(artifact), WEIGHTS)))


def zip_artifact(artifact: str | Path, zip_path: str | Path | None = None) -> Path:
    """The model directory as one file (`<dir>.zip` by default), written atomically."""
    artifact = Path(artifact)
    zip_path = Path(zip_path or artifact.with_name(artifact.name + ".zip"))
    temporary = zip_path.with_name(f".{zip_path.name}.tmp-{os.getpid()}")
    with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in (WEIGHTS, METADATA):
            archive.write(artifact / name, arcname=name)
    os.replace(temporary, zip_path)
    return zip_path


def _per_dataset(variables: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{dataset name: its variables}; one unnamed entry for a single-dataset model."""
    if "input" in variables:
        return {"": variables}
    return {name: roles for name, roles in variables.items() if name != "computed_forcings"}


def summary(artifact: str | Path) -> str:
    metadata = read_metadata(artifact)
    variables = metadata["variables"]
    lines = [
        f"squall model {artifact} ({metadata['format']})",
        f"  parameters: {metadata['parameters']:,}",
        f"  timestep: {metadata['timestep_seconds'] // 3600} h, input steps: "
        f"{metadata['input_steps']}",
        *(
            f"  {name + ' ' if name else ''}{kind}s: {', '.join(roles[kind]) or 'none'}"
            for name, roles in _per_dataset(variables).items()
            for kind in ("input", "output")
            if roles[kind] or not name  # a dataset lists only the roles it plays
        ),
        f"  computed forcings: {', '.join(variables['computed_forcings']) or 'none'}",
        f"  graph: {metadata['graph']['node_sets']}, grid hash "
        f"{metadata['graph'].get('coordinates_hash')}",
        f"  lineage: {metadata.get('lineage', {})}",
        f"  training run: {metadata.get('training', {})}",
        f"  versions: {metadata['versions']}",
    ]
    return "\n".join(lines)
