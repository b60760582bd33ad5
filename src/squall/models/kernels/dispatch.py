"""When the fused Triton kernels run: CUDA tensors, Triton importable, not switched off."""

from __future__ import annotations

import functools
import importlib.util
import os

import torch


@functools.cache
def triton_available() -> bool:
    return importlib.util.find_spec("triton") is not None


def interpreting() -> bool:
    """Triton's interpreter (TRITON_INTERPRET=1) runs the kernels on CPU tensors: kernel tests
    on a machine without a GPU."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def fused_kernels_enabled(tensor: torch.Tensor) -> bool:
    if os.environ.get("SQUALL_FUSED_KERNELS", "1") == "0" or not triton_available():
        return False
    return tensor.is_cuda or interpreting()
