"""Starting a training from an earlier one: warm start, transfer learning, frozen parts, and
the check that a checkpoint's variables match the data's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

_PREFIX = "model."


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    return torch.load(path, map_location="cpu", weights_only=True)


def check_variables(checkpoint: dict[str, Any], spec: dict[str, Any], allow_remap: bool) -> None:
    """Refuse a checkpoint whose variables (or their order) differ from the model's."""
    theirs = checkpoint["hyper_parameters"]["model_spec"]["variables"]
    ours = spec["variables"]
    if theirs == ours or allow_remap:
        return
    if sorted(theirs) == sorted(ours):
        what = "the same variables in another order"
    else:
        what = (
            f"other variables (only in the checkpoint: {sorted(set(theirs) - set(ours))}; only "
            f"in the data: {sorted(set(ours) - set(theirs))})"
        )
    raise ValueError(
        f"the checkpoint was trained on {what}: checkpoint {theirs}, data {ours}. Set "
        "training.initialisation.allow_variable_remap=true to load the tensors that still fit "
        "(transfer learning) and train the rest"
    )


def load_matching_weights(
    model: nn.Module, checkpoint: dict[str, Any], strict: bool
) -> dict[str, list[str]]:
    """Copy the checkpoint's weights into `model`. With strict=False (transfer learning) only
    tensors with the same name and shape are loaded; the report lists what was skipped."""
    source = checkpoint.get("ema_state_dict") or {
        k.removeprefix(_PREFIX): v
        for k, v in checkpoint["state_dict"].items()
        if k.startswith(_PREFIX)
    }
    target = model.state_dict()
    loaded, skipped = [], []
    for name, value in source.items():
        if name in target and target[name].shape == value.shape:
            loaded.append(name)
        else:
            skipped.append(name)
    missing = sorted(set(target) - set(loaded))
    if strict and (skipped or missing):
        raise ValueError(
            f"the checkpoint does not fit the model: {len(skipped)} tensors differ in name or "
            f"shape (e.g. {skipped[:3]}), {len(missing)} model tensors are absent (e.g. "
            f"{missing[:3]}); use training.initialisation.mode=transfer to load what fits"
        )
    with torch.no_grad():
        model.load_state_dict({name: source[name] for name in loaded}, strict=False)
    return {"loaded": loaded, "skipped": skipped, "not_in_checkpoint": missing}


def freeze(model: nn.Module, names: list[str]) -> list[str]:
    """Stop gradients in the named submodules (e.g. network.encoder); returns what was frozen."""
    modules = dict(model.named_modules())
    unknown = [name for name in names if name not in modules]
    if unknown:
        top = sorted(
            {name.split(".")[0] for name in modules if name}
            | {".".join(name.split(".")[:2]) for name in modules if name.count(".") == 1}
        )
        raise ValueError(f"cannot freeze {unknown}: no such submodule; some names: {top}")
    for name in names:
        for parameter in modules[name].parameters():
            parameter.requires_grad_(False)
    return names
