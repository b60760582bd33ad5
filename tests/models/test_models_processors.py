"""Every processor x mapper pairing: shapes, gradients to every parameter, independence of edge
order, chunking, checkpointing, bf16, layer kernels and the ensemble noise."""

from __future__ import annotations

import itertools

import pytest
import torch
from test_network import make_graph

from squall.models.encoder_processor_decoder import EncoderProcessorDecoder
from squall.models.layer_kernels import LayerKernels
from squall.models.sliding_window import sliding_window_attention

PAIRINGS = list(
    itertools.product(("gnn", "graphtransformer", "transformer"), ("gnn", "graphtransformer"))
)
TINY = {"in_channels": 5, "out_channels": 3, "hidden_channels": 16, "processor_layers": 2}


def _model(graph, processor, mapper, **extra) -> EncoderProcessorDecoder:
    torch.manual_seed(0)
    settings = {"num_heads": 4, "window_size": 8, **TINY, **extra}
    return EncoderProcessorDecoder(graph, processor=processor, mapper=mapper, **settings)


def _perturb_zero_initialised(model: torch.nn.Module) -> None:
    """Give zero-initialised parameters (node/edge features, conditional norms) values, so
    tests see every path."""
    with torch.no_grad():
        for parameter in model.parameters():
            if not parameter.any():
                parameter.normal_(std=0.1)


@pytest.fixture(scope="module")
def graph():
    return make_graph(num_data=60, num_hidden=20)


@pytest.mark.parametrize(("processor", "mapper"), PAIRINGS)
def test_every_pairing_maps_data_to_data_and_trains_every_parameter(graph, processor, mapper):
    model = _model(graph, processor, mapper, trainable_edge_channels=2, noise_channels=3)
    _perturb_zero_initialised(model)
    y = model(torch.randn(2, 60, 5))
    assert y.shape == (2, 60, 3) and torch.isfinite(y).all()
    y.square().mean().backward()
    without_gradient = [
        name
        for name, parameter in model.named_parameters()
        if parameter.grad is None or not parameter.grad.abs().sum() > 0
    ]
    assert without_gradient == []


@pytest.mark.parametrize(("processor", "mapper"), PAIRINGS)
def test_output_does_not_depend_on_edge_order(graph, processor, mapper):
    x = torch.randn(2, 60, 5)
    reference = _model(graph, processor, mapper)
    shuffled_graph = graph.clone()
    generator = torch.Generator().manual_seed(1)
    for edge_set in shuffled_graph.edge_types:
        store = shuffled_graph[edge_set]
        order = torch.randperm(store.edge_index.shape[1], generator=generator)
        store.edge_index, store.edge_attr = store.edge_index[:, order], store.edge_attr[order]
    shuffled = _model(shuffled_graph, processor, mapper)
    shuffled.load_state_dict(reference.state_dict())
    torch.testing.assert_close(shuffled(x), reference(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mapper", ["gnn", "graphtransformer"])
def test_chunked_mappers_give_the_same_outputs_and_gradients(graph, mapper):
    x = torch.randn(2, 60, 5)
    results = []
    for num_chunks, checkpointing in ((1, False), (7, False), (7, True), (1000, False)):
        model = _model(graph, "gnn", mapper, num_chunks=num_chunks)
        model.gradient_checkpointing = {"encoder": checkpointing, "decoder": checkpointing}
        y = model(x)
        y.square().mean().backward()
        results.append((y.detach(), {n: p.grad for n, p in model.named_parameters()}))
    (y_ref, grads_ref), *others = results
    for y, grads in others:
        torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
        for name, grad in grads_ref.items():
            torch.testing.assert_close(grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize(("processor", "mapper"), PAIRINGS)
def test_checkpointing_each_component_changes_nothing(graph, processor, mapper):
    model = _model(graph, processor, mapper)
    x = torch.randn(2, 60, 5)
    results = []
    for setting in (False, {"processor": True}, True):
        model.gradient_checkpointing = setting
        model.zero_grad()
        y = model(x)
        y.square().mean().backward()
        results.append((y.detach(), [p.grad.clone() for p in model.parameters()]))
    for y, grads in results[1:]:
        torch.testing.assert_close(y, results[0][0], atol=0, rtol=0)
        for grad, reference in zip(grads, results[0][1], strict=True):
            torch.testing.assert_close(grad, reference, atol=1e-6, rtol=1e-5)
    assert model.spec["gradient_checkpointing"] == dict.fromkeys(
        ("encoder", "processor", "decoder"), True
    )


@pytest.mark.parametrize(("processor", "mapper"), PAIRINGS)
def test_bf16_autocast_agrees_with_fp32(graph, processor, mapper):
    model = _model(graph, processor, mapper)
    _perturb_zero_initialised(model)
    x = torch.randn(2, 60, 5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y_bf16 = model(x)
    y_fp32 = model(x)
    assert torch.isfinite(y_bf16).all()
    # bf16 keeps 8 bits of mantissa: errors of a few percent of the output spread are expected.
    error = (y_bf16.float() - y_fp32).abs().max() / y_fp32.std()
    assert error < 0.1, f"bf16 differs by {error:.3f} of the output stdev"


def test_sliding_window_attention_equals_full_attention_with_a_band_mask():
    torch.manual_seed(0)
    query, key, value = torch.randn(3, 2, 3, 37, 8).unbind(0)
    for window_size in (2, 6, 9, 64):
        half = window_size // 2
        positions = torch.arange(37)
        band = (positions[:, None] - positions[None, :]).abs() <= half
        expected = torch.nn.functional.scaled_dot_product_attention(
            query, key, value, attn_mask=band
        )
        got = sliding_window_attention(query, key, value, window_size)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_transformer_processor_is_local_in_node_order(graph):
    """One transformer layer with window 4: hidden node i only sees nodes i-2..i+2."""
    from squall.models.processors import Processor

    torch.manual_seed(0)
    processor = Processor("transformer", 16, 3, num_layers=1, num_heads=2, window_size=4)
    x = torch.randn(1, 20, 16)
    perturbed = x.clone()
    perturbed[0, 10] += 1
    changed = (processor(x, None, None) - processor(perturbed, None, None)).abs().amax(-1)[0] > 0
    assert torch.nonzero(changed).flatten().tolist() == [8, 9, 10, 11, 12]


def test_layer_kernels_come_from_the_config_and_the_allowlist(graph):
    kernels = {
        "norm": {"_target_": "torch.nn.RMSNorm", "eps": 1e-6},
        "mlp": {"_target_": "squall.models.layers.GatedMLP"},
        "activation": {"_target_": "torch.nn.GELU", "approximate": "tanh"},
    }
    model = _model(graph, "graphtransformer", "graphtransformer", layer_kernels=kernels)
    types = {type(module).__name__ for module in model.modules()}
    assert {"RMSNorm", "GatedMLP", "GatedLinearUnit", "GELU"} <= types
    assert "LayerNorm" not in types and "SiLU" not in types
    assert model(torch.randn(1, 60, 5)).shape == (1, 60, 3)
    with pytest.raises(ValueError, match="not allowed"):
        LayerKernels({"norm": {"_target_": "os.system"}})
    with pytest.raises(ValueError, match="rejected its arguments"):
        LayerKernels({"activation": {"_target_": "torch.nn.SiLU", "slope": 2}})
    with pytest.raises(ValueError, match="both set"):
        _model(graph, "gnn", "gnn", activation="GELU", layer_kernels=kernels)


def test_ensemble_noise_makes_members_differ_and_starts_as_the_deterministic_model(graph):
    deterministic = _model(graph, "graphtransformer", "gnn")
    ensemble = _model(graph, "graphtransformer", "gnn", noise_channels=4)
    x = torch.randn(1, 60, 5).expand(3, -1, -1)
    # Conditional norms start at zero influence: the same outputs as without noise.
    # Only the processor norms differ: LayerNorm affine (at its identity init) vs conditional.
    shared = {k: v for k, v in ensemble.state_dict().items() if k in deterministic.state_dict()}
    missing = deterministic.load_state_dict(shared, strict=False).missing_keys
    assert missing and all(key.startswith("processor.") and "norm" in key for key in missing)
    torch.testing.assert_close(ensemble(x), deterministic(x))
    _perturb_zero_initialised(ensemble)
    members = ensemble(x)
    assert (members[0] - members[1]).abs().max() > 1e-4
    noise = torch.randn(1, 4).expand(3, -1)
    fixed = ensemble(x, noise=noise)
    torch.testing.assert_close(fixed[0], fixed[2])


def test_attention_needs_heads_that_divide_the_channels(graph):
    with pytest.raises(ValueError, match="divisible by num_heads"):
        _model(graph, "transformer", "gnn", num_heads=5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize(("processor", "mapper"), PAIRINGS)
def test_every_pairing_runs_on_cuda_in_fp32_and_bf16(graph, processor, mapper):
    model = _model(graph, processor, mapper, num_chunks=3, noise_channels=2).cuda()
    _perturb_zero_initialised(model)
    model.gradient_checkpointing = True
    x = torch.randn(2, 60, 5, device="cuda")
    noise = torch.randn(2, 2, device="cuda")
    y_fp32 = model(x, noise)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        y_bf16 = model(x, noise)
    y_bf16.float().square().mean().backward()
    assert y_bf16.device.type == "cuda" and torch.isfinite(y_bf16).all()
    assert all(p.grad is not None for p in model.parameters())
    error = (y_bf16.float() - y_fp32).abs().max() / y_fp32.std()
    assert error < 0.1
    cpu = _model(graph, processor, mapper, num_chunks=3, noise_channels=2)
    cpu.load_state_dict({k: v.cpu() for k, v in model.state_dict().items()})
    torch.testing.assert_close(cpu(x.cpu(), noise.cpu()), y_fp32.cpu(), atol=1e-4, rtol=1e-4)


def _add_coarse_level(graph, level: int, stride: int = 3):
    """Level `level` (node set hidden_<level+1>, as squall.graphs names it) = every
    `stride`-th node of the level above, with k-NN edges."""
    from test_network import _knn_edges

    fine = "hidden" if level == 1 else f"hidden_{level}"
    coarse = f"hidden_{level + 1}"
    fine_coordinates = graph[fine].x.numpy()
    graph[coarse].x = graph[fine].x[::stride].clone()
    coarse_coordinates = graph[coarse].x.numpy()
    for source, target, points, k in (
        (coarse, coarse, (coarse_coordinates, coarse_coordinates), 2),
        (fine, coarse, (fine_coordinates, coarse_coordinates), 3),
        (coarse, fine, (coarse_coordinates, fine_coordinates), 2),
    ):
        exclude_self = source == target
        edge_index, edge_attr = _knn_edges(*points, k, exclude_self=exclude_self)
        graph[source, "to", target].edge_index = edge_index
        graph[source, "to", target].edge_attr = edge_attr
    return graph


@pytest.mark.parametrize(("processor", "mapper"), [("gnn", "gnn"), ("graphtransformer", "gnn")])
def test_hierarchical_variant_sweeps_down_and_up_and_trains_every_parameter(
    graph, processor, mapper
):
    hierarchy = _add_coarse_level(_add_coarse_level(graph.clone(), 1), 2)
    model = _model(hierarchy, processor, mapper, hierarchy_levels=3, processor_layers=1)
    _perturb_zero_initialised(model)
    y = model(torch.randn(2, 60, 5))
    assert y.shape == (2, 60, 3) and torch.isfinite(y).all()
    y.square().mean().backward()
    assert [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()] == []
    assert len(model.processor.down_processors) == 3 and len(model.processor.up_processors) == 2
    x = torch.randn(2, 60, 5)
    plain = model(x)
    model.gradient_checkpointing = True
    assert model.processor.down_mappers[0].gradient_checkpointing
    torch.testing.assert_close(model(x), plain, atol=0, rtol=0)
    with pytest.raises(ValueError, match="hidden_4"):
        _model(hierarchy, processor, mapper, hierarchy_levels=4)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_hierarchical_variant_runs_on_cuda(graph):
    hierarchy = _add_coarse_level(_add_coarse_level(graph.clone(), 1), 2)
    model = _model(hierarchy, "graphtransformer", "graphtransformer", hierarchy_levels=3)
    model = model.cuda()
    x = torch.randn(2, 60, 5, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        y = model(x)
    y.float().square().mean().backward()
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y.float(), model(x), atol=0.1, rtol=0.1)


@pytest.mark.parametrize(
    ("processor", "default_widths"),
    [("gnn", {16}), ("graphtransformer", {32}), ("transformer", {16, 32})],
)
def test_mlp_hidden_ratio_sets_the_width_of_every_blocks_mlp(graph, processor, default_widths):
    """model.mlp_hidden_ratio: the processor's and mappers' block MLPs get hidden layers of
    ratio x hidden_channels (by default 1 for the GNN, 2 for attention blocks)."""
    from squall.config.schema import ModelConfig

    mapper = "gnn" if processor == "transformer" else processor

    def hidden_widths(model):
        blocks = [*model.processor.layers, model.encoder.block, model.decoder.block]
        names = ("mlp", "edge_mlp", "node_mlp")
        mlps = [getattr(b, name) for b in blocks for name in names if hasattr(b, name)]
        return {mlp.layers[0].out_features for mlp in mlps}

    default = _model(graph, processor, mapper)
    wider = _model(graph, processor, mapper, mlp_hidden_ratio=3.0)
    assert hidden_widths(default) == default_widths
    assert hidden_widths(wider) == {48}
    assert sum(p.numel() for p in wider.parameters()) > sum(p.numel() for p in default.parameters())
    assert wider.spec["mlp_hidden_ratio"] == 3.0
    assert wider(torch.randn(2, 60, 5)).shape == (2, 60, 3)
    assert ModelConfig(mlp_hidden_ratio=3.25).mlp_hidden_ratio == 3.25
    with pytest.raises(ValueError, match="mlp_hidden_ratio"):
        ModelConfig(mlp_hidden_ratio=0)


@pytest.mark.parametrize("kind", ["gnn", "graphtransformer"])
@pytest.mark.parametrize("hierarchy_levels", [1, 3])
def test_edge_latent_channels_sets_the_width_of_every_edge_latent(graph, kind, hierarchy_levels):
    """model.edge_latent_channels: the processor's and mappers' edge embeddings (and so the
    GNN's edge MLPs and the attention's edge projections) work on latents of that width, the
    node channels unchanged; every parameter still trains."""
    from squall.config.schema import ModelConfig

    if hierarchy_levels > 1:
        graph = _add_coarse_level(_add_coarse_level(graph.clone(), 1), 2)
    settings = {"hierarchy_levels": hierarchy_levels}
    default = _model(graph, kind, kind, **settings)
    narrow = _model(graph, kind, kind, edge_latent_channels=6, **settings)
    embeddings = [m for m in narrow.modules() if hasattr(m, "edge_embedding")]
    # encoder, decoder, processor; hierarchy: 3 + 2 level processors, 2 + 2 level mappers
    assert len(embeddings) == (3 if hierarchy_levels == 1 else 2 + 5 + 4)
    assert {m.edge_embedding.layers[-1].out_features for m in embeddings} == {6}
    if kind == "graphtransformer":
        projections = [m.edge_key_value for m in narrow.modules() if hasattr(m, "edge_key_value")]
        assert {(p.in_features, p.out_features) for p in projections} == {(6, 32)}
    else:
        edge_mlps = [m.edge_mlp for m in narrow.modules() if hasattr(m, "edge_mlp")]
        assert {mlp.layers[-1].out_features for mlp in edge_mlps} == {6}
    assert sum(p.numel() for p in narrow.parameters()) < sum(
        p.numel() for p in default.parameters()
    )
    assert narrow.spec["edge_latent_channels"] == 6
    _perturb_zero_initialised(narrow)
    y = narrow(torch.randn(2, 60, 5))
    assert y.shape == (2, 60, 3)
    y.square().mean().backward()
    untrained = [n for n, p in narrow.named_parameters() if p.grad is None or not p.grad.any()]
    assert not untrained, untrained
    with pytest.raises(ValueError, match="edge_latent_channels"):
        ModelConfig(edge_latent_channels=0)


def test_graph_transformer_loads_a_checkpoint_with_an_edge_projection_bias():
    """Blocks saved before the edge projection lost its (redundant) bias load into the new
    layout with that bias folded into the sources' [key | value] bias: same outputs."""
    from torch_geometric.utils import softmax

    from squall.models.graph_transformer import GraphTransformerBlock

    torch.manual_seed(5)
    block = GraphTransformerBlock(8, 4, num_heads=2).double()
    edge_index = torch.tensor([[0, 1, 2, 2, 0], [0, 0, 1, 2, 2]])
    x_src, x_dst = torch.randn(1, 3, 8).double(), torch.randn(1, 3, 8).double()
    edges = torch.randn(5, 4).double()
    old_state = block.state_dict()
    old_state["edge_key_value.bias"] = torch.randn(16).double()
    # the old block's attention, by hand: keys and values of each edge with the edge bias
    with torch.no_grad():
        source = block.key_value(block.source_norm(x_src))[0, edge_index[0]]
        edge = edges @ old_state["edge_key_value.weight"].T + old_state["edge_key_value.bias"]
        key, value = (source + edge).view(5, 2, 2, 4).unbind(1)
        query = block.query(block.target_norm(x_dst))[0, edge_index[1]].view(5, 2, 4)
        weights = softmax((query * key).sum(-1) / 2.0, edge_index[1], num_nodes=3)
        attended = (
            torch.zeros(3, 2, 4).double().index_add_(0, edge_index[1], weights[..., None] * value)
        )
        expected = x_dst + block.projection(attended.view(1, 3, 8))
        expected = expected + block.mlp(block.mlp_norm(expected))
    block.load_state_dict(old_state)
    out, _ = block(x_src, x_dst, edge_index, edges)
    torch.testing.assert_close(out, expected)
    assert "edge_key_value.bias" not in block.state_dict()
