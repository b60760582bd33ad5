"""Behaviour of the encoder-processor-decoder a user would notice: shapes, independence of
samples, locality, checkpointing, rebuild from spec, and that it can learn."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree
from torch_geometric.data import HeteroData

from squall.models.encoder_processor_decoder import EncoderProcessorDecoder
from squall.models.layers import MLP


def _unit_vectors(coordinates: np.ndarray) -> np.ndarray:
    latitude, longitude = coordinates[:, 0], coordinates[:, 1]
    return np.stack(
        [
            np.cos(latitude) * np.cos(longitude),
            np.cos(latitude) * np.sin(longitude),
            np.sin(latitude),
        ],
        axis=-1,
    )


def _knn_edges(source: np.ndarray, target: np.ndarray, k: int, exclude_self: bool = False):
    """Each target node receives edges from its k nearest source nodes; sorted by target."""
    source_xyz, target_xyz = _unit_vectors(source), _unit_vectors(target)
    _, neighbours = cKDTree(source_xyz).query(target_xyz, k=k + int(exclude_self))
    neighbours = neighbours.reshape(len(target), -1)[:, int(exclude_self) :]
    target_index = np.repeat(np.arange(len(target)), neighbours.shape[1])
    source_index = neighbours.reshape(-1)
    # Attributes as a graph builder would give: chord length and the 3D offset direction.
    offset = target_xyz[target_index] - source_xyz[source_index]
    length = np.linalg.norm(offset, axis=-1, keepdims=True)
    edge_attr = np.concatenate([length, offset[:, :2] / length.max()], axis=-1)
    edge_index = torch.from_numpy(np.stack([source_index, target_index])).long()
    return edge_index, torch.from_numpy(edge_attr).float()


def make_graph(num_data: int, num_hidden: int, seed: int = 0, processor_k: int = 4) -> HeteroData:
    """Random points on a sphere patch; encoder 1-NN (each data node feeds its nearest hidden
    node), processor k-NN, decoder 3-NN."""
    rng = np.random.default_rng(seed)

    def patch(n):
        return np.stack([rng.uniform(-0.6, 0.6, n), rng.uniform(0.0, 1.5, n)], axis=-1)

    data, hidden = patch(num_data), patch(num_hidden)
    graph = HeteroData()
    graph["data"].x = torch.from_numpy(data).float()
    graph["hidden"].x = torch.from_numpy(hidden).float()
    # Encoder: edges data->hidden; built as "hidden target of each data source".
    _, nearest_hidden = cKDTree(_unit_vectors(hidden)).query(_unit_vectors(data), k=1)
    order = np.argsort(nearest_hidden, kind="stable")
    encoder_index = torch.from_numpy(np.stack([order, nearest_hidden[order]])).long()
    graph["data", "to", "hidden"].edge_index = encoder_index
    graph["data", "to", "hidden"].edge_attr = torch.rand(encoder_index.shape[1], 3)
    edges = {
        ("hidden", "to", "hidden"): _knn_edges(hidden, hidden, processor_k, exclude_self=True),
        ("hidden", "to", "data"): _knn_edges(hidden, data, 3),
    }
    for edge_set, (edge_index, edge_attr) in edges.items():
        graph[edge_set].edge_index, graph[edge_set].edge_attr = edge_index, edge_attr
    return graph


SMALL = {"in_channels": 5, "out_channels": 3, "hidden_channels": 16, "processor_layers": 2}


@pytest.fixture(scope="module")
def graph() -> HeteroData:
    return make_graph(num_data=60, num_hidden=20)


def test_output_shape_and_finite(graph):
    torch.manual_seed(0)
    model = EncoderProcessorDecoder(graph, **SMALL)
    y = model(torch.randn(2, 60, 5))
    assert y.shape == (2, 60, 3)
    assert torch.isfinite(y).all()


def test_wrong_input_shape_names_expected_shape(graph):
    model = EncoderProcessorDecoder(graph, **SMALL)
    with pytest.raises(ValueError, match="60 data nodes, 5 channels"):
        model(torch.randn(2, 59, 5))


def test_unknown_activation_lists_valid_names():
    with pytest.raises(ValueError, match="SiLU"):
        MLP(4, 8, 4, activation="Swish")


def test_samples_in_a_batch_do_not_interact(graph):
    torch.manual_seed(0)
    model = EncoderProcessorDecoder(graph, **SMALL)
    x = torch.randn(3, 60, 5)
    batched = model(x)
    for i in range(3):
        torch.testing.assert_close(batched[i : i + 1], model(x[i : i + 1]), atol=1e-5, rtol=0)


def _reachable_data_nodes(graph: HeteroData, data_node: int) -> set[int]:
    """Data nodes whose output can depend on `data_node` with one processor layer."""
    encoder = graph["data", "to", "hidden"].edge_index
    processor = graph["hidden", "to", "hidden"].edge_index
    decoder = graph["hidden", "to", "data"].edge_index
    hidden = set(encoder[1, encoder[0] == data_node].tolist())
    hidden |= set(processor[1, torch.isin(processor[0], torch.tensor(sorted(hidden)))].tolist())
    reached = set(decoder[1, torch.isin(decoder[0], torch.tensor(sorted(hidden)))].tolist())
    return reached | {data_node}  # the decoder's skip connection from the encoder


def test_a_change_at_one_node_stays_within_its_receptive_field():
    graph = make_graph(num_data=150, num_hidden=40, seed=1, processor_k=3)
    torch.manual_seed(0)
    model = EncoderProcessorDecoder(graph, **{**SMALL, "processor_layers": 1})
    x = torch.randn(1, 150, 5)
    perturbed = x.clone()
    perturbed[0, 7] += 1.0
    changed = (model(x) - model(perturbed)).abs().amax(dim=-1)[0] > 0
    reachable = _reachable_data_nodes(graph, 7)
    assert len(reachable) < 100, "test graph too dense to check locality"
    assert changed[7]
    assert set(torch.nonzero(changed).flatten().tolist()) <= reachable


def test_gradient_checkpointing_gives_same_outputs_and_gradients(graph):
    torch.manual_seed(0)
    model = EncoderProcessorDecoder(graph, **SMALL)
    x = torch.randn(2, 60, 5)
    results = []
    for enabled in (False, True):
        model.gradient_checkpointing = enabled
        model.zero_grad()
        y = model(x)
        y.square().mean().backward()
        results.append((y.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    (y_plain, grads_plain), (y_ckpt, grads_ckpt) = results
    torch.testing.assert_close(y_ckpt, y_plain, atol=0, rtol=0)
    for name, grad in grads_plain.items():
        torch.testing.assert_close(grads_ckpt[name], grad, atol=1e-6, rtol=1e-5, msg=name)


def test_rebuilt_from_spec_and_weights_reproduces_outputs(graph):
    torch.manual_seed(0)
    model = EncoderProcessorDecoder(graph, **SMALL, activation="GELU")
    with torch.no_grad():  # make the zero-initialised node parameters matter
        model.data_node_parameters.normal_()
    spec = json.loads(json.dumps(model.model_spec()))
    assert spec == model.spec and spec["activation"] == "GELU"
    rebuilt = EncoderProcessorDecoder.from_spec(graph, spec)
    rebuilt.load_state_dict(model.state_dict())
    x = torch.randn(2, 60, 5)
    assert torch.equal(rebuilt(x), model(x))


def test_state_dict_holds_weights_only_but_graph_follows_the_module(graph):
    model = EncoderProcessorDecoder(graph, **SMALL)
    assert set(model.state_dict()) == {name for name, _ in model.named_parameters()}
    buffers = dict(model.named_buffers())
    assert torch.equal(buffers["processor_edge_index"], graph["hidden", "to", "hidden"].edge_index)
    model.double()  # like .to(device): buffers move with the module
    assert model.decoder_edge_attr.dtype == torch.float64


def test_bf16_autocast_runs_and_stays_close(graph):
    torch.manual_seed(0)
    model = EncoderProcessorDecoder(graph, **SMALL)
    x = torch.randn(2, 60, 5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y_bf16 = model(x)
    y_bf16.float().sum().backward()
    assert torch.isfinite(y_bf16).all()
    torch.testing.assert_close(y_bf16.float(), model(x), atol=0.1, rtol=0.1)


def test_fits_a_smooth_target(graph):
    torch.manual_seed(0)
    model = EncoderProcessorDecoder(graph, in_channels=2, out_channels=2, hidden_channels=32)
    latitude, longitude = graph["data"].x.T
    x = torch.stack([latitude, longitude], dim=-1).expand(2, -1, -1)
    target = torch.stack([torch.sin(3 * longitude) * torch.cos(latitude), latitude.square()], -1)
    target = target.expand(2, -1, -1)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(100):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda_under_bf16_autocast(graph):
    torch.manual_seed(0)
    model = EncoderProcessorDecoder(graph, **SMALL, gradient_checkpointing=True).cuda()
    x = torch.randn(2, 60, 5, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        y = model(x)
    y.float().square().mean().backward()
    assert y.device.type == "cuda" and torch.isfinite(y).all()
    torch.testing.assert_close(y.float(), model(x), atol=0.1, rtol=0.1)
