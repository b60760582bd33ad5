"""Compile squall's Triton kernels for an H100 (sm_90) on a machine without a GPU.

Triton's interpreter (the CPU kernel tests) accepts code its compiler rejects (NOTES.md, v4b:
a `return` inside a constexpr `if`), so this builds the real PTX and cubin of every kernel the
wrappers launch, with the arguments they launch it with: each wrapper runs on small bf16 CPU
tensors with the kernels swapped for recorders, and every recorded launch is compiled with
`triton.compile(ASTSource(...), target=GPUTarget("cuda", 90, 32))`. Outputs are not computed.

    PYTHONPATH=/tmp/tritonsite .venv/bin/python benchmarks/gpu/compile_check.py

(triton==3.6.0, the device's version, installed with `pip install --target /tmp/tritonsite`).
Exit status 1 and the compiler's message when a kernel does not compile.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import torch

KERNEL_MODULES = {
    "squall.models.kernels.edge_hidden_triton": (
        "edge_hidden_forward_kernel",
        "edge_hidden_backward_kernel",
    ),
    "squall.models.kernels.segment_sum_triton": ("segment_sum_kernel",),
    "squall.models.kernels.graph_attention_triton": (
        "attention_forward_kernel",
        "attention_backward_kernel",
    ),
    "squall.models.kernels.projected_attention_triton": (
        "projected_attention_forward_kernel",
        "projected_attention_backward_kernel",
        "projected_attention_source_grad_kernel",
    ),
    "squall.models.kernels.layer_norm_triton": (
        "layer_norm_forward_kernel",
        "layer_norm_backward_kernel",
    ),
}
LAUNCH_OPTIONS = ("num_warps", "num_stages")


@dataclass
class Launch:
    kernel: Any
    args: tuple
    kwargs: dict[str, Any]
    ptx: str = ""  # set once compiled


@dataclass
class Recorder:
    """Stands in for a @triton.jit kernel: `kernel[grid](...)` records the call."""

    kernel: Any
    launches: list[Launch] = field(default_factory=list)

    def __getitem__(self, grid):
        def launch(*args, **kwargs):
            self.launches.append(Launch(self.kernel, args, kwargs))

        return launch


@contextmanager
def recorded_kernels():
    """Every kernel replaced by a Recorder, and the fused path forced on for CPU tensors."""
    recorders = []
    with ExitStack() as patches:
        patches.enter_context(
            mock.patch("squall.models.kernels.dispatch.interpreting", return_value=True)
        )
        for module_name, names in KERNEL_MODULES.items():
            module = importlib.import_module(module_name)
            for name in names:
                recorders.append(Recorder(getattr(module, name)))
                patches.enter_context(mock.patch.object(module, name, recorders[-1]))
        yield recorders


def _run_forward_and_backward(function: Callable[..., torch.Tensor], *inputs: torch.Tensor):
    inputs = tuple(t.requires_grad_() if t.is_floating_point() else t for t in inputs)
    out = function(*inputs)
    leaves = [t for t in inputs if t.requires_grad]
    torch.autograd.grad(out, leaves, torch.zeros_like(out), allow_unused=True)


def exercise_wrappers() -> None:
    """Every fused wrapper once per specialisation that matters (activation, shared edges,
    channel widths of the benchmark models), forward and backward, bf16."""
    from squall.models.kernels import (
        graph_attention,
        graph_attention_over_edge_features,
        segment_sum,
    )
    from squall.models.kernels.edge_hidden import edge_hidden
    from squall.models.kernels.layer_norm import fused_layer_norm

    bf16 = torch.bfloat16
    edge_index = torch.tensor([[0, 2, 1, 1], [0, 0, 1, 2]])
    for channels in (512, 664, 1024):
        for activation in ("SiLU", "GELU", "GELU_tanh"):
            for edge_shape in ((4, channels), (2, 4, channels)):
                _run_forward_and_backward(
                    lambda e, s, t, a=activation: edge_hidden(e, s, t, edge_index, a),
                    torch.zeros(edge_shape, dtype=bf16),
                    torch.zeros(2, 3, channels, dtype=bf16),
                    torch.zeros(2, 3, channels, dtype=bf16),
                )
    _run_forward_and_backward(
        lambda m: segment_sum(m, edge_index[1], 3), torch.zeros(2, 4, 512, dtype=bf16)
    )
    _run_forward_and_backward(
        lambda q, s, e: graph_attention(q, s, e, edge_index, 16),
        torch.zeros(1, 3, 1024, dtype=bf16),
        torch.zeros(1, 3, 2048, dtype=bf16),
        torch.zeros(1, 4, 2048, dtype=bf16),
    )
    for edge_channels in (64, 48):  # the benchmark's narrow latents; one not a power of two
        _run_forward_and_backward(
            lambda q, s, e, w: graph_attention_over_edge_features(q, s, e, w, edge_index, 16),
            torch.zeros(1, 3, 1024, dtype=bf16),
            torch.zeros(1, 3, 2048, dtype=bf16),
            torch.zeros(4, edge_channels, dtype=bf16),
            torch.zeros(2048, edge_channels, dtype=bf16),
        )
    _run_forward_and_backward(
        lambda x, w, b: fused_layer_norm(x, w, b, 1e-5, bf16),
        torch.zeros(10, 1024),
        torch.ones(1024),
        torch.zeros(1024),
    )


def compile_for_sm90(launch: Launch) -> float:
    """Seconds to build PTX and cubin of one recorded launch, specialised as Triton's launcher
    specialises it (integers equal to 1 become constants; pointers and integers divisible by 16
    are marked so, which is what lets loads become 16-byte vectors)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.backends.nvidia.compiler import CUDABackend
    from triton.compiler import ASTSource
    from triton.runtime.jit import mangle_type, native_specialize_impl

    kernel = launch.kernel
    values = dict(zip(kernel.arg_names, launch.args, strict=False))
    values.update({k: v for k, v in launch.kwargs.items() if k not in LAUNCH_OPTIONS})
    signature, constexprs, attrs = {}, {}, {}
    for param in kernel.params:
        name, value = kernel.arg_names[param.num], values[kernel.arg_names[param.num]]
        if param.is_constexpr:
            kind, key = "constexpr", None
        elif param.do_not_specialize:
            kind, key = mangle_type(value), None
        else:
            kind, key = native_specialize_impl(CUDABackend, value, False, True, True)
        signature[name] = kind
        if kind == "constexpr":
            constexprs[name] = value
        elif isinstance(key, str):
            attrs[(param.num,)] = CUDABackend.parse_attr(key)
    options = {k: v for k, v in launch.kwargs.items() if k in LAUNCH_OPTIONS}
    start = time.perf_counter()
    compiled = triton.compile(
        ASTSource(kernel, signature, constexprs=constexprs, attrs=attrs),
        target=GPUTarget("cuda", 90, 32),
        options=options,
    )
    if not compiled.asm.get("cubin"):
        raise RuntimeError(f"{kernel.__name__}: no cubin was produced")
    launch.ptx = compiled.asm["ptx"]
    return time.perf_counter() - start


def _memory_instructions(ptx: str) -> str:
    """How the kernel touches memory: 16-byte vector loads and stores are what a memory-bound
    kernel wants; scalar ones mean an alignment hint was lost."""
    counts = {
        "16-byte loads": len(re.findall(r"ld\.global(?:\.\w+)*\.v4", ptx)),
        "16-byte stores": len(re.findall(r"st\.global(?:\.\w+)*\.v4", ptx)),
        "other loads": len(re.findall(r"ld\.global(?!(?:\.\w+)*\.v4)", ptx)),
        "atomics": len(re.findall(r"(?:atom|red)\.global", ptx)),
    }
    return ", ".join(f"{name} {count}" for name, count in counts.items())


def main() -> int:
    if importlib.util.find_spec("triton") is None:
        print(
            "triton is not importable: `pip install --target /tmp/tritonsite triton==3.6.0`, "
            "then run with PYTHONPATH=/tmp/tritonsite",
            file=sys.stderr,
        )
        return 2
    with recorded_kernels() as recorders:
        exercise_wrappers()
    launches = [launch for recorder in recorders for launch in recorder.launches]
    missing = [r.kernel.__name__ for r in recorders if not r.launches]
    if missing:
        print(f"not launched by any wrapper here: {missing}", file=sys.stderr)
        return 1
    unique = {}
    for launch in launches:
        key = (launch.kernel.__name__, repr(sorted(launch.kwargs.items())))
        unique.setdefault(key, launch)
    failures = 0
    for (name, kwargs), launch in sorted(unique.items()):
        try:
            seconds = compile_for_sm90(launch)
            print(f"ok   {name} {kwargs} ({seconds:.1f} s; {_memory_instructions(launch.ptx)})")
        except Exception as error:  # report every failing kernel, not only the first
            failures += 1
            # a nested jit function's error is in the cause; its reason ends the text
            cause = f"\n  caused by: ...{repr(error.__cause__)[-500:]}" if error.__cause__ else ""
            print(f"FAIL {name} {kwargs}: {error}{cause}", file=sys.stderr)
    print(f"{len(unique) - failures}/{len(unique)} kernel specialisations compile for sm_90")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
