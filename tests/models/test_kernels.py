"""Graph kernels: the fused Triton path (CUDA, or Triton's CPU interpreter) against the
plain-PyTorch reference, on fresh random inputs; and the CPU-side pieces that always run."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.checkpoint import checkpoint

from squall.models.graph_transformer import GraphTransformerBlock
from squall.models.kernels import (
    gather_rows,
    graph_attention,
    graph_attention_reference,
    norm_for_matmul,
    segment_sum,
    segment_sum_reference,
)
from squall.models.kernels.csr import row_offsets, source_csr, target_csr
from squall.models.layer_kernels import LayerKernels
from squall.models.layers import GatedMLP
from squall.models.message_passing import GraphMessagePassing

HAS_TRITON = importlib.util.find_spec("triton") is not None
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def random_graph(num_sources, num_targets, num_edges, device="cpu", empty_target=True):
    """Target-sorted random edges; with `empty_target` the last target has no incoming edge."""
    source = torch.randint(0, num_sources, (num_edges,), device=device)
    target = torch.randint(0, num_targets - int(empty_target), (num_edges,), device=device)
    order = torch.argsort(target, stable=True)
    return torch.stack([source[order], target[order]])


def relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    value, reference = value.detach().double(), reference.detach().double()
    return float((value - reference).norm() / reference.norm())


def test_row_offsets_delimit_each_targets_edges():
    edge_index = random_graph(5, 9, 40)
    offsets = row_offsets(edge_index[1], 9)
    for target in range(9):
        rows = edge_index[1, offsets[target] : offsets[target + 1]]
        assert (rows == target).all()
        assert int(offsets[target + 1] - offsets[target]) == int((edge_index[1] == target).sum())


def test_source_csr_lists_each_sources_edges_once_per_edge_set():
    edge_index = random_graph(6, 9, 40)
    offsets, order, targets = source_csr(edge_index, 7)  # source 6 has no edge
    assert order.dtype == targets.dtype == torch.int32 and offsets.shape == (8,)
    assert torch.equal(targets.long(), edge_index[1])
    for source in range(7):
        edges = order[offsets[source] : offsets[source + 1]].long()
        assert (edge_index[0, edges] == source).all()
        assert len(edges) == int((edge_index[0] == source).sum())
    assert source_csr(edge_index, 7)[1] is order  # cached: no sort at the next call
    edge_index[0, 0] = 6  # an in-place change is noticed: source 6 now has one edge
    offsets, order, _ = source_csr(edge_index, 7)
    assert int(offsets[7] - offsets[6]) == 1 and int(order[offsets[6]]) == 0


def test_index_caches_take_tensors_made_in_inference_mode():
    """Validation and prediction may run under torch.inference_mode, whose tensors keep no
    version counter: a mapper's chunk index made there still caches what is derived from it."""
    with torch.inference_mode():
        edge_index = random_graph(6, 9, 40)
        offsets, sources = target_csr(edge_index, 9)
        assert target_csr(edge_index, 9)[0] is offsets
    assert torch.equal(offsets, row_offsets(edge_index[1], 9))
    assert torch.equal(sources.long(), edge_index[0])


def test_segment_sum_reference_is_a_per_target_sum():
    edge_index = random_graph(5, 7, 30)
    messages = torch.randn(2, 30, 3, dtype=torch.float64)
    summed = segment_sum_reference(messages, edge_index[1], 7)
    for target in range(7):
        expected = messages[:, edge_index[1] == target].sum(1)
        torch.testing.assert_close(summed[:, target], expected)


def test_gnn_first_layer_by_parts_equals_the_concatenated_layer():
    """The GNN applies its edge MLP's first layer part by part; the gated MLP (no plain first
    linear) takes the concatenated route. Both must be the same function of the same weights."""
    torch.manual_seed(0)
    x_src, x_dst = (
        torch.randn(2, 6, 8, dtype=torch.float64),
        torch.randn(2, 5, 8, dtype=torch.float64),
    )
    edge_index = random_graph(6, 5, 17)
    edges = torch.randn(17, 8, dtype=torch.float64)
    block = GraphMessagePassing(8, 8).double()
    out, new_edges = block(x_src, x_dst, edge_index, edges)
    concatenated = torch.cat(
        [x_src[:, edge_index[0]], x_dst[:, edge_index[1]], edges.expand(2, -1, -1)], dim=-1
    )
    update = block.edge_mlp(concatenated)
    torch.testing.assert_close(new_edges, edges + update)
    node_inputs = torch.cat([x_dst, segment_sum_reference(update, edge_index[1], 5)], dim=-1)
    torch.testing.assert_close(out, x_dst + block.node_mlp(node_inputs))
    gated = LayerKernels({"mlp": {"_target_": "squall.models.layers.GatedMLP"}})
    gated_block = GraphMessagePassing(8, 8, kernels=gated).double()
    assert (
        isinstance(gated_block.edge_mlp, GatedMLP) and gated_block.edge_mlp.first_linear() is None
    )
    assert gated_block(x_src, x_dst, edge_index, edges)[0].shape == out.shape


INTERPRETER_CHECK = r"""
import torch
from squall.models.kernels import graph_attention, graph_attention_reference, segment_sum
from squall.models.kernels import segment_sum_reference
from tests.models.test_kernels import random_graph, relative_error
torch.manual_seed(1)
for batch, heads, channels, edge_batch in [(2, 4, 32, 1), (1, 3, 24, 1), (2, 2, 16, 2)]:
    edge_index = random_graph(7, 6, 25)
    inputs = [torch.randn(batch, 6, channels, dtype=torch.float64),
              torch.randn(batch, 7, 2 * channels, dtype=torch.float64),
              torch.randn(edge_batch, 25, 2 * channels, dtype=torch.float64)]
    inputs = [t.requires_grad_() for t in inputs]
    reference = graph_attention_reference(*inputs, edge_index, heads)
    fused = graph_attention(*inputs, edge_index, heads)
    grad = torch.randn_like(reference)
    expected = torch.autograd.grad(reference, inputs, grad)
    got = torch.autograd.grad(fused, inputs, grad)
    errors = [relative_error(fused, reference)]
    errors += [relative_error(a, b) for a, b in zip(got, expected)]
    assert max(errors) < 1e-5, errors
    messages = torch.randn(batch, 25, channels, dtype=torch.float64)
    assert relative_error(segment_sum(messages, edge_index[1], 6),
                          segment_sum_reference(messages, edge_index[1], 6)) < 1e-6
import torch.nn.functional as F
from squall.models.kernels import graph_attention_over_edge_features
from squall.models.kernels.projected_attention import takes_projected_route
# edge features shared by the batch or per sample; d_e under 2 head widths takes the projected
# route (5: not a power of two), 24 the edges x 2C one
for batch, heads, channels, edge_shape, d_e, projected in [
    (2, 4, 32, (25,), 5, True), (1, 3, 24, (1, 25), 16, True), (2, 2, 16, (2, 25), 8, True),
    (2, 4, 32, (25,), 24, False),
]:
    edge_index = random_graph(7, 6, 25)
    inputs = [torch.randn(batch, 6, channels, dtype=torch.float64),
              torch.randn(batch, 7, 2 * channels, dtype=torch.float64),
              torch.randn(*edge_shape, d_e, dtype=torch.float64),
              torch.randn(2 * channels, d_e, dtype=torch.float64) / d_e**0.5]
    query, kv_source, edges, weight = [t.requires_grad_() for t in inputs]
    assert takes_projected_route(query, d_e, heads) == projected
    kv_edge = F.linear(edges, weight)
    kv_edge = kv_edge if kv_edge.dim() == 3 else kv_edge.unsqueeze(0)
    reference = graph_attention_reference(query, kv_source, kv_edge, edge_index, heads)
    fused = graph_attention_over_edge_features(query, kv_source, edges, weight, edge_index, heads)
    grad = torch.randn_like(reference)
    expected = torch.autograd.grad(reference, inputs, grad)
    pairs = zip(torch.autograd.grad(fused, inputs, grad), expected)
    errors = [relative_error(fused, reference)] + [relative_error(a, b) for a, b in pairs]
    assert max(errors) < 1e-5, errors
from squall.models.kernels import fused_layer_norm
for rows, channels, with_bias in [(37, 24, True), (130, 64, False)]:
    x = torch.randn(rows, channels, dtype=torch.float64)
    weight = torch.randn(channels, dtype=torch.float64)
    bias = torch.randn(channels, dtype=torch.float64) if with_bias else None
    inputs = [t.requires_grad_() for t in (x, weight, bias) if t is not None]
    reference = torch.nn.functional.layer_norm(x, (channels,), weight, bias)
    fused = fused_layer_norm(x, weight, bias, 1e-5, torch.float64)
    grad = torch.randn_like(reference)
    expected = torch.autograd.grad(reference, inputs, grad)
    pairs = zip(torch.autograd.grad(fused, inputs, grad), expected)
    errors = [relative_error(fused, reference)] + [relative_error(a, b) for a, b in pairs]
    assert max(errors) < 1e-5, errors
print("interpreted kernels agree")
"""


interpreter_only = pytest.mark.skipif(
    not HAS_TRITON or torch.cuda.is_available(),
    reason="for machines with triton and no GPU (with a GPU the gpu tests run the kernels)",
)


def run_under_triton_interpreter(script: str) -> str:
    """Runs `script` in a fresh Python with TRITON_INTERPRET=1 (the interpreter must be on
    before triton is imported) from the repository root; returns its stdout."""
    env = dict(os.environ, TRITON_INTERPRET="1")
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=root, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@interpreter_only
def test_kernels_under_the_triton_interpreter_match_the_reference():
    """Same kernels as on the GPU, run by Triton's interpreter on CPU tensors (fp32 inside)."""
    assert "interpreted kernels agree" in run_under_triton_interpreter(INTERPRETER_CHECK)


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("heads,channels,edge_batch", [(16, 1024, 1), (4, 96, 2), (8, 512, 1)])
def test_fused_graph_attention_matches_reference_in_bf16(heads, channels, edge_batch):
    torch.manual_seed(heads + channels)
    batch, num_sources, num_targets, num_edges = 2, 300, 200, 2500
    edge_index = random_graph(num_sources, num_targets, num_edges, "cuda")
    inputs = [
        torch.randn(batch, num_targets, channels, device="cuda"),
        torch.randn(batch, num_sources, 2 * channels, device="cuda"),
        torch.randn(edge_batch, num_edges, 2 * channels, device="cuda"),
    ]
    grad = torch.randn(batch, num_targets, channels, device="cuda")
    exact_inputs = [t.bfloat16().double().requires_grad_() for t in inputs]
    exact = graph_attention_reference(*exact_inputs, edge_index.cpu().cuda(), heads)
    exact_grads = torch.autograd.grad(exact, exact_inputs, grad.double())
    bf16_inputs = [t.bfloat16().requires_grad_() for t in inputs]
    fused = graph_attention(*bf16_inputs, edge_index, heads)
    assert fused.dtype == torch.bfloat16 and torch.isfinite(fused).all()
    fused_grads = torch.autograd.grad(fused, bf16_inputs, grad.bfloat16())
    assert relative_error(fused, exact) < 1e-2
    for got, expected in zip(fused_grads, exact_grads, strict=True):
        assert got.shape == expected.shape
        assert relative_error(got, expected) < 2e-2


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize(
    "heads,channels,edge_channels,edge_shape",
    [(16, 1024, 64, (2500,)), (16, 1024, 48, (2, 2500)), (4, 96, 40, (1, 2500))],
)
def test_projected_graph_attention_matches_reference_in_bf16(
    heads, channels, edge_channels, edge_shape
):
    """The edge projection moved to the target nodes, in bf16 under autocast, against the
    edges x 2C route in fp64 (inputs rounded to bf16 first)."""
    from squall.models.kernels import graph_attention_over_edge_features
    from squall.models.kernels.projected_attention import takes_projected_route

    torch.manual_seed(heads + edge_channels)
    batch, num_sources, num_targets = 2, 300, 200
    edge_index = random_graph(num_sources, num_targets, edge_shape[-1], "cuda")
    inputs = [
        torch.randn(batch, num_targets, channels, device="cuda"),
        torch.randn(batch, num_sources, 2 * channels, device="cuda"),
        torch.randn(*edge_shape, edge_channels, device="cuda"),
        torch.randn(2 * channels, edge_channels, device="cuda") / edge_channels**0.5,
    ]
    grad = torch.randn(batch, num_targets, channels, device="cuda")
    exact_inputs = [t.bfloat16().double().requires_grad_() for t in inputs]
    query, kv_source, edges, weight = exact_inputs
    kv_edge = torch.nn.functional.linear(edges, weight)
    kv_edge = kv_edge if kv_edge.dim() == 3 else kv_edge.unsqueeze(0)
    exact = graph_attention_reference(query, kv_source, kv_edge, edge_index, heads)
    exact_grads = torch.autograd.grad(exact, exact_inputs, grad.double())
    assert takes_projected_route(inputs[0], edge_channels, heads)
    bf16_inputs = [t.bfloat16().requires_grad_() for t in inputs[:3]]
    weight = inputs[3].requires_grad_()  # a Linear's fp32 weight, cast by autocast
    with torch.autocast("cuda", dtype=torch.bfloat16):
        fused = graph_attention_over_edge_features(*bf16_inputs, weight, edge_index, heads)
    assert fused.dtype == torch.bfloat16 and torch.isfinite(fused).all()
    fused_grads = torch.autograd.grad(fused, [*bf16_inputs, weight], grad.bfloat16())
    assert relative_error(fused, exact) < 1e-2
    for got, expected in zip(fused_grads, exact_grads, strict=True):
        assert got.shape == expected.shape
        assert relative_error(got, expected) < 2e-2


@pytest.mark.gpu
@cuda
def test_fused_segment_sum_matches_reference():
    edge_index = random_graph(50, 400, 3000, "cuda")
    messages = torch.randn(2, 3000, 384, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    reference = segment_sum_reference(messages.double(), edge_index[1], 400)
    fused = segment_sum(messages, edge_index[1], 400)
    assert fused.dtype == torch.float32 and relative_error(fused, reference) < 1e-5
    grad = torch.randn_like(fused)
    (got,) = torch.autograd.grad(fused, messages, grad)
    torch.testing.assert_close(got.float(), grad.index_select(1, edge_index[1]).bfloat16().float())


def block_and_inputs(kind, channels, heads, sizes, empty_target=True, device="cuda"):
    """A graph-transformer or GNN block and random inputs: sizes = (sources, targets, edges).
    "graphtransformer-narrow": edge latents of one head's width (the projected route)."""
    num_sources, num_targets, num_edges = sizes
    edge_channels = channels // heads if kind == "graphtransformer-narrow" else channels
    block = (
        GraphTransformerBlock(channels, edge_channels, num_heads=heads)
        if kind.startswith("graphtransformer")
        else GraphMessagePassing(channels, channels)
    ).to(device)
    edge_index = random_graph(num_sources, num_targets, num_edges, device, empty_target)
    x_src = torch.randn(2, num_sources, channels, device=device)
    x_dst = torch.randn(2, num_targets, channels, device=device)
    edges = torch.randn(num_edges, edge_channels, device=device)
    return block, x_src, x_dst, edge_index, edges


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("kind", ["graphtransformer", "graphtransformer-narrow", "gnn"])
def test_blocks_agree_between_fused_and_reference_paths(kind, monkeypatch):
    """A whole block under bf16 autocast: same outputs and parameter gradients either way."""
    torch.manual_seed(3)
    block, x_src, x_dst, edge_index, edges = block_and_inputs(
        kind, 256, 8, (700, 500, 6000), empty_target=False
    )

    def run(fused: bool):
        monkeypatch.setenv("SQUALL_FUSED_KERNELS", "1" if fused else "0")
        block.zero_grad()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out, new_edges = block(x_src, x_dst, edge_index, edges)
        (out.float().square().mean() + new_edges.float().square().mean()).backward()
        return out.float(), [p.grad.float().clone() for p in block.parameters()]

    fused_out, fused_grads = run(True)
    reference_out, reference_grads = run(False)
    assert relative_error(fused_out, reference_out) < 1e-2
    for got, expected in zip(fused_grads, reference_grads, strict=True):
        if expected.norm() > 0:
            assert relative_error(got, expected) < 3e-2


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("kind", ["graphtransformer", "graphtransformer-narrow", "gnn"])
def test_fused_blocks_capture_into_a_cuda_graph(kind):
    """Forward (checkpointed, autocast) and backward of a block recorded as one CUDA graph: the
    capture fails on any host synchronisation, and a replay on new inputs gives what an eager
    run on those inputs gives."""
    torch.manual_seed(4)
    block, x_src, x_dst, edge_index, edges = block_and_inputs(kind, 128, 4, (300, 200, 2500))
    x_dst.requires_grad_()

    def run():
        with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
            out, new_edges = checkpoint(block, x_src, x_dst, edge_index, edges, use_reentrant=False)
        loss = out.float().square().mean() + new_edges.float().square().mean()
        inputs = [x_dst, *block.parameters()]
        return out.float(), torch.autograd.grad(loss, inputs, materialize_grads=True)

    assert_replay_matches_eager(run, [x_src, x_dst, edges])


def assert_replay_matches_eager(run, inputs, around_capture=contextlib.nullcontext) -> None:
    """`run() -> (output, gradients)` recorded as one CUDA graph (after a warm-up on a side
    stream: the kernels compile there, never during capture; the capture itself fails on any
    host synchronisation); `inputs` then refilled at random and the graph replayed: its output
    and gradients must be what an eager run on the new inputs gives."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        run()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with around_capture(), torch.cuda.graph(graph):
        captured_out, captured_grads = run()
    with torch.no_grad():
        for tensor in inputs:
            tensor.copy_(torch.randn_like(tensor))
    graph.replay()
    eager_out, eager_grads = run()
    assert relative_error(captured_out, eager_out) < 1e-3
    for got, expected in zip(captured_grads, eager_grads, strict=True):
        if expected.norm() > 0:
            assert relative_error(got, expected) < 1e-3


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("index_is_sorted", [True, False])
def test_gather_rows_backward_sums_in_fp32(index_is_sorted):
    edge_index = random_graph(300, 200, 4000, "cuda")
    index, num_nodes = (edge_index[1], 200) if index_is_sorted else (edge_index[0], 300)
    nodes = torch.randn(2, num_nodes, 256, device="cuda", dtype=torch.bfloat16)
    nodes.requires_grad_()
    gathered = gather_rows(nodes, index, index_is_sorted)
    assert torch.equal(gathered, nodes.index_select(1, index))
    grad = torch.randn_like(gathered)
    (got,) = torch.autograd.grad(gathered, nodes, grad)
    exact = torch.zeros(2, num_nodes, 256, device="cuda", dtype=torch.float64)
    exact.index_add_(1, index, grad.double())
    assert got.dtype == torch.bfloat16 and relative_error(got, exact) < 1e-2


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize(
    "channels,with_bias,dtype",
    [(1024, True, torch.float32), (96, False, torch.float32), (1024, True, torch.bfloat16)],
)
def test_fused_layer_norm_matches_the_autocast_layer_norm(channels, with_bias, dtype):
    """Under autocast: same values as LayerNorm (computed in fp32) followed by the cast a Linear
    makes, and the same gradients for input (in its dtype), weight and bias (fp32)."""
    norm = torch.nn.LayerNorm(channels, bias=with_bias).cuda()
    with torch.no_grad():
        norm.weight.normal_()
        if with_bias:
            norm.bias.normal_()
    x = torch.randn(3, 777, channels, device="cuda", dtype=dtype, requires_grad=True)
    grad = torch.randn(3, 777, channels, device="cuda").bfloat16()
    parameters = [p for p in norm.parameters()]
    with torch.autocast("cuda", dtype=torch.bfloat16):
        fused = norm_for_matmul(norm, x)
        reference = norm(x).to(torch.bfloat16)
    assert fused is not None and fused.dtype == torch.bfloat16
    assert relative_error(fused, reference) < 1e-2
    fused_grads = torch.autograd.grad(fused, [x, *parameters], grad)
    reference_grads = torch.autograd.grad(reference, [x, *parameters], grad)
    tolerance = 1e-4 if dtype == torch.float32 else 1e-2  # bf16 input gradient
    for got, expected in zip(fused_grads, reference_grads, strict=True):
        assert got.dtype == expected.dtype and relative_error(got, expected) < tolerance
