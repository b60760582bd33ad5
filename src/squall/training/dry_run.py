"""The pre-flight's dry run: build everything, run one real sample forward and backward at the
longest rollout, and estimate peak device memory per GPU before a job is submitted."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import torch

from squall.config.schema import SquallConfig
from squall.training.trainer import assemble

ADAM_STATE_PER_PARAMETER = 2  # AdamW keeps two moments per trainable parameter


class SavedTensorBytes:
    """Bytes autograd keeps for the backward pass (activations), each storage counted once."""

    def __init__(self) -> None:
        # Storages are kept referenced until the count is read, so no address is reused.
        self.storages: dict[int, torch.UntypedStorage] = {}

    def pack(self, tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        self.storages.setdefault(storage.data_ptr(), storage)
        return tensor

    @property
    def total(self) -> int:
        return sum(storage.nbytes() for storage in self.storages.values())


def _device(config: SquallConfig) -> torch.device:
    wants_gpu = config.system.hardware.accelerator in ("gpu", "auto")
    return torch.device("cuda" if wants_gpu and torch.cuda.is_available() else "cpu")


def _as_batch(sample: Any, device: torch.device) -> Any:
    """One sample as a batch of one on the device (several datasets: a dict per dataset)."""
    if isinstance(sample, dict):
        return {key: _as_batch(value, device) for key, value in sample.items()}
    return sample[None].to(device)


def dry_run(config: SquallConfig) -> dict[str, Any]:
    assembly = assemble(config)
    device = _device(config)
    task = assembly.task.to(device)
    sample = assembly.datamodule.samples["training"][0]
    batch = _as_batch(sample, device)
    steps = config.task.rollout.maximum
    bf16 = config.system.hardware.precision.startswith("bf16")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    saved = SavedTensorBytes()
    with torch.autograd.graph.saved_tensors_hooks(saved.pack, lambda tensor: tensor), autocast:
        loss = task.loss(*task._roll_out(batch, steps))
    loss.backward()
    if not torch.isfinite(loss):
        raise ValueError(f"the dry run's loss is {loss.item()}: check the data and statistics")

    parameters = list(task.model.parameters())
    count = sum(p.numel() for p in parameters)
    trainable = sum(p.numel() for p in parameters if p.requires_grad)
    weights = sum(p.numel() * p.element_size() for p in parameters)
    gradients_and_state = trainable * 4 * (1 + ADAM_STATE_PER_PARAMETER)
    batch_size = config.dataloader.batch_size.training
    estimate = weights + gradients_and_state + saved.total * batch_size
    report = {
        "device": str(device),
        "loss": loss.item(),
        "parameters": count,
        "trainable_parameters": trainable,
        "rollout": steps,
        "activation_bytes_per_sample": saved.total,
        "batch_size_per_device": batch_size,
        "estimated_peak_bytes_per_device": estimate,
        "estimate": "weights + gradients + AdamW state + activations x batch size",
    }
    if device.type == "cuda":
        report["measured_peak_bytes_one_sample"] = torch.cuda.max_memory_allocated(device)
    return report


def describe(report: dict[str, Any]) -> str:
    gib = 2**30
    return (
        f"dry run on {report['device']}: loss {report['loss']:.4f}, "
        f"{report['parameters']:,} parameters ({report['trainable_parameters']:,} trainable); "
        f"activations {report['activation_bytes_per_sample'] / 2**20:.1f} MiB per sample at "
        f"rollout {report['rollout']}; estimated peak "
        f"{report['estimated_peak_bytes_per_device'] / gib:.2f} GiB per device at batch size "
        f"{report['batch_size_per_device']}"
    )
