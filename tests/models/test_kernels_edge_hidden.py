"""The fused GNN edge "first layer" (kernels.edge_hidden): the plain-PyTorch reference is the
unfused math exactly; the Triton kernels (Triton's interpreter on CPU, the GPU with -m gpu)
agree with it in forward and in every input gradient; the GNN block takes the fused route
where it runs and keeps its numbers everywhere else."""

from __future__ import annotations

from unittest import mock

import pytest
import torch
from test_kernels import (
    assert_replay_matches_eager,
    interpreter_only,
    random_graph,
    relative_error,
    run_under_triton_interpreter,
)
from torch import nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from squall.models import message_passing
from squall.models.kernels import edge_hidden, edge_hidden_reference
from squall.models.kernels.edge_hidden import fused_activation_name
from squall.models.layer_kernels import LayerKernels
from squall.models.layers import MLP
from squall.models.message_passing import GraphMessagePassing

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
ACTIVATIONS = {
    "SiLU": nn.SiLU(),
    "GELU": nn.GELU(),
    "GELU_tanh": nn.GELU(approximate="tanh"),
}


def projections(batch, num_sources, num_targets, num_edges, channels, edge_batch, **tensor):
    """Random (projected_edges, projected_sources, projected_targets); edge_batch 0: (E, C)."""
    edge_shape = (num_edges, channels) if edge_batch == 0 else (edge_batch, num_edges, channels)
    return [
        torch.randn(edge_shape, **tensor),
        torch.randn(batch, num_sources, channels, **tensor),
        torch.randn(batch, num_targets, channels, **tensor),
    ]


def gnn_block(activation: str, channels: int, device: str = "cpu") -> GraphMessagePassing:
    """A GNN block whose MLPs use `activation` (an edge_hidden name)."""
    config = {"_target_": "torch.nn.SiLU"}
    if activation.startswith("GELU"):
        config = {
            "_target_": "torch.nn.GELU",
            "approximate": "tanh" if "tanh" in activation else "none",
        }
    block = GraphMessagePassing(channels, channels, kernels=LayerKernels({"activation": config}))
    return block.to(device)


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
@pytest.mark.parametrize("edge_batch", [0, 2])
def test_reference_is_the_unfused_first_layer_exactly(activation, edge_batch, monkeypatch):
    """Gathers, adds and the MLP's own activation module, in fp32 on CPU: the same bits."""
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    torch.manual_seed(0)
    edge_index = random_graph(9, 7, 40)
    inputs = projections(2, 9, 7, 40, 16, edge_batch)
    expected = ACTIVATIONS[activation](
        inputs[0] + inputs[1].index_select(1, edge_index[0]) + inputs[2][:, edge_index[1]]
    )
    assert torch.equal(edge_hidden_reference(*inputs, edge_index, activation), expected)
    assert torch.equal(edge_hidden(*inputs, edge_index, activation), expected)  # CPU: reference


@pytest.mark.parametrize("activation", ["SiLU", "GELU", "ReLU"])
def test_gnn_block_keeps_its_numbers_on_the_cpu_path(activation, monkeypatch):
    """The block's output is bit for bit the unfused first layer by parts followed by the rest
    of the edge MLP (what it computed before the fused route existed)."""
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    torch.manual_seed(1)
    kernels = LayerKernels({"activation": {"_target_": f"torch.nn.{activation}"}})
    block = GraphMessagePassing(8, 8, kernels=kernels)
    x_src, x_dst = torch.randn(2, 6, 8), torch.randn(2, 5, 8)
    edge_index, edges = random_graph(6, 5, 17), torch.randn(17, 8)
    weight_src, weight_dst, weight_edge = block.edge_mlp.layers[0].weight.split(8, dim=1)
    hidden = (
        F.linear(edges, weight_edge, block.edge_mlp.layers[0].bias)
        + F.linear(x_src, weight_src).index_select(1, edge_index[0])
        + F.linear(x_dst, weight_dst).index_select(1, edge_index[1])
    )
    update = block.edge_mlp.forward_after_first_layer(hidden)
    _, new_edges = block(x_src, x_dst, edge_index, edges)
    assert torch.equal(new_edges, edges + update)


@pytest.mark.parametrize("hidden_layers,layer_norm", [(1, True), (2, False)])
def test_mlp_forward_after_first_activation_is_the_rest_of_the_mlp(hidden_layers, layer_norm):
    torch.manual_seed(2)
    mlp = MLP(6, 10, 4, num_hidden_layers=hidden_layers, layer_norm=layer_norm)
    x = torch.randn(3, 6)
    activated = mlp.layers[1](mlp.layers[0](x))
    assert torch.equal(mlp.forward_after_first_activation(activated), mlp(x))


def test_fused_activation_names_and_user_errors():
    assert [fused_activation_name(m) for m in ACTIVATIONS.values()] == list(ACTIVATIONS)
    assert fused_activation_name(nn.ReLU()) is None and fused_activation_name(nn.Mish()) is None
    edge_index = random_graph(4, 3, 10)
    inputs = projections(2, 4, 3, 10, 8, 0)
    with pytest.raises(ValueError, match="use one of"):
        edge_hidden_reference(*inputs, edge_index, "Tanh")
    with pytest.raises(ValueError, match=r"projected_edges \(edges, C\)"):
        edge_hidden_reference(inputs[0][:9], *inputs[1:], edge_index, "SiLU")
    with pytest.raises(ValueError, match="batch, nodes, channels"):
        edge_hidden_reference(inputs[0], inputs[1][0], inputs[2], edge_index, "SiLU")


INTERPRETER_CHECK = r"""
import os
import sys
import torch
from torch.utils.checkpoint import checkpoint
from squall.models.kernels import edge_hidden, edge_hidden_reference
sys.path.insert(0, "tests/models")  # as pytest's pythonpath does
from test_kernels import (
    assert_replay_matches_eager,
    interpreter_only,
    random_graph,
    relative_error,
    run_under_triton_interpreter,
)
from test_kernels_edge_hidden import gnn_block, projections
torch.manual_seed(5)
cases = [(act, edge_batch, channels) for act in ("SiLU", "GELU", "GELU_tanh")
         for edge_batch in (0, 1, 2) for channels in (24, 20)]
cases += [("SiLU", 2, 384), ("GELU", 0, 13)]  # three channel blocks; rows 13 apart (ALIGN 1)
cases += [("SiLU", 0, 8, 0)]  # no edges at all (a mapper's chunk can have none)
for activation, edge_batch, channels, *num_edges in cases:
    num_edges = num_edges[0] if num_edges else 25
    edge_index = random_graph(7, 6, num_edges)  # the last target has no edge
    inputs = projections(2, 7, 6, num_edges, channels, edge_batch, dtype=torch.float64)
    inputs[1] = torch.randn(2, 7, 2 * channels, dtype=torch.float64)[..., :channels]  # a view
    inputs = [t.requires_grad_() for t in inputs]
    reference = edge_hidden_reference(*inputs, edge_index, activation)
    fused = edge_hidden(*inputs, edge_index, activation)
    assert fused.shape == reference.shape == (2, num_edges, channels)
    assert fused.dtype == torch.float64
    grad = torch.randn_like(reference)
    expected = torch.autograd.grad(reference, inputs, grad)
    got = torch.autograd.grad(fused, inputs, grad)
    assert all(a.shape == b.shape for a, b in zip(got, expected)), (activation, edge_batch)
    if num_edges == 0:
        assert all(float(g.abs().sum()) == 0.0 for g in got)
        continue
    errors = [relative_error(fused, reference)]
    errors += [relative_error(a, b) for a, b in zip(got, expected, strict=True)]
    assert max(errors) < 1e-5, (activation, edge_batch, channels, errors)
    assert float(got[2][:, 5].abs().max()) == 0.0  # the empty target's gradient is zero

# a GNN block, checkpointed: fused route against SQUALL_FUSED_KERNELS=0 (fp64 in, fp32 inside)
for activation in ("SiLU", "GELU"):
    block = gnn_block(activation, 16).double()
    x_src, x_dst = torch.randn(2, 9, 16, dtype=torch.float64), torch.randn(2, 6, 16).double()
    edges = torch.randn(30, 16, dtype=torch.float64)
    edge_index = random_graph(9, 6, 30)
    results = []
    for fused in ("1", "0"):
        os.environ["SQUALL_FUSED_KERNELS"] = fused
        block.zero_grad()
        out, new_edges = checkpoint(block, x_src, x_dst, edge_index, edges, use_reentrant=False)
        (out.square().mean() + new_edges.square().mean()).backward()
        results.append([out, new_edges] + [p.grad.clone() for p in block.parameters()])
    errors = [relative_error(a, b) for a, b in zip(*results, strict=True) if b.norm() > 0]
    assert max(errors) < 1e-5, (activation, errors)
print("interpreted edge_hidden agrees")
"""


@interpreter_only
def test_edge_hidden_under_the_triton_interpreter_matches_the_reference():
    """Forward and the three input gradients, 2-D / (1, E, C) / (B, E, C) edge projections,
    batch 2, an empty target, every activation; then a checkpointed GNN block either way."""
    output = run_under_triton_interpreter(INTERPRETER_CHECK)
    assert "interpreted edge_hidden agrees" in output


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize(
    "activation,edge_batch,channels",
    [("SiLU", 0, 512), ("SiLU", 2, 664), ("GELU", 2, 512), ("GELU_tanh", 0, 1024)],
)
def test_fused_edge_hidden_matches_the_reference_in_bf16(activation, edge_batch, channels):
    """bf16 kernel against the fp64 reference on the same (bf16-rounded) inputs."""
    torch.manual_seed(channels + edge_batch)
    edge_index = random_graph(3000, 2000, 24000, "cuda")
    inputs = projections(2, 3000, 2000, 24000, channels, edge_batch, device="cuda")
    exact_inputs = [t.bfloat16().double().requires_grad_() for t in inputs]
    exact = edge_hidden_reference(*exact_inputs, edge_index, activation)
    grad = torch.randn_like(exact)
    exact_grads = torch.autograd.grad(exact, exact_inputs, grad)
    bf16_inputs = [t.bfloat16().requires_grad_() for t in inputs]
    fused = edge_hidden(*bf16_inputs, edge_index, activation)
    assert fused.dtype == torch.bfloat16 and relative_error(fused, exact) < 1e-2
    fused_grads = torch.autograd.grad(fused, bf16_inputs, grad.bfloat16())
    for got, expected in zip(fused_grads, exact_grads, strict=True):
        assert got.shape == expected.shape and got.dtype == torch.bfloat16
        assert relative_error(got, expected) < 2e-2


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("activation,batched_edges", [("SiLU", False), ("GELU", True)])
def test_gnn_block_fused_agrees_with_the_unfused_path_under_autocast(
    activation, batched_edges, monkeypatch
):
    torch.manual_seed(6)
    block = gnn_block(activation, 256, "cuda")
    edge_index = random_graph(700, 500, 6000, "cuda", empty_target=False)
    x_src, x_dst = torch.randn(2, 700, 256, device="cuda"), torch.randn(2, 500, 256, device="cuda")
    edges = torch.randn(*((2,) if batched_edges else ()), 6000, 256, device="cuda")

    def run(fused: bool):
        monkeypatch.setenv("SQUALL_FUSED_KERNELS", "1" if fused else "0")
        block.zero_grad()
        with mock.patch.object(
            message_passing, "edge_hidden", wraps=message_passing.edge_hidden
        ) as spy:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                out, new_edges = block(x_src, x_dst, edge_index, edges)
        assert spy.call_count == int(fused)
        (out.float().square().mean() + new_edges.float().square().mean()).backward()
        return [out.float(), new_edges.float()], [
            p.grad.float().clone() for p in block.parameters()
        ]

    fused_outputs, fused_grads = run(True)
    reference_outputs, reference_grads = run(False)
    for got, expected in zip(fused_outputs, reference_outputs, strict=True):
        assert relative_error(got, expected) < 1e-2
    for got, expected in zip(fused_grads, reference_grads, strict=True):
        if expected.norm() > 0:
            assert relative_error(got, expected) < 3e-2


@pytest.mark.gpu
@cuda
def test_two_checkpointed_gnn_layers_with_edge_hidden_capture_into_a_cuda_graph():
    """Two GNN layers as in the processor (the first with sample-independent (E, C) edges, the
    second with the (B, E, C) edges the first returns), checkpointed, under autocast, forward
    and backward recorded as one CUDA graph: the capture fails on a host synchronisation, and a
    replay on new inputs gives what an eager run on them gives."""
    torch.manual_seed(7)
    layers = nn.ModuleList(gnn_block("GELU_tanh", 128, "cuda") for _ in range(2))
    edge_index = random_graph(200, 200, 2500, "cuda")
    nodes = torch.randn(2, 200, 128, device="cuda", requires_grad=True)
    edges = torch.randn(2500, 128, device="cuda")

    def run():
        x, e = nodes, edges
        with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
            for layer in layers:
                x, e = checkpoint(layer, x, x, edge_index, e, use_reentrant=False)
        loss = x.float().square().mean() + e.float().square().mean()
        return x.float(), torch.autograd.grad(loss, [nodes, *layers.parameters()])

    spy = mock.MagicMock(wraps=message_passing.edge_hidden)
    spying = lambda: mock.patch.object(message_passing, "edge_hidden", spy)  # noqa: E731
    assert_replay_matches_eager(run, [nodes, edges], around_capture=spying)
    assert spy.call_count == 4  # two layers, each run again by the checkpoint's recompute
