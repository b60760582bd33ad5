"""The graph encoder-processor-decoder network: data grid -> hidden mesh -> data grid."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch_geometric.data import HeteroData

from squall.models.layers import MLP
from squall.models.message_passing import GraphMapper, GraphProcessor

ENCODER_EDGES = ("data", "to", "hidden")
PROCESSOR_EDGES = ("hidden", "to", "hidden")
DECODER_EDGES = ("hidden", "to", "data")


def _node_coordinates(graph: HeteroData, node_set: str) -> torch.Tensor:
    """(nodes, 2) [lat, lon] in radians, checked, as float32."""
    if node_set not in graph.node_types or "x" not in graph[node_set]:
        raise ValueError(
            f"The graph has no coordinates for node set {node_set!r} (graph[{node_set!r}].x); "
            f"its node sets are {graph.node_types}. Build the graph with squall.graphs."
        )
    coordinates = graph[node_set].x
    if coordinates.dim() != 2 or coordinates.shape[1] != 2:
        raise ValueError(
            f"graph[{node_set!r}].x must be (nodes, 2) [lat, lon], got {tuple(coordinates.shape)}."
        )
    if coordinates[:, 0].abs().max() > math.pi / 2 + 1e-4:
        raise ValueError(
            f"graph[{node_set!r}].x latitudes exceed pi/2: the coordinates look like degrees, "
            "the graph contract wants radians."
        )
    return coordinates.float()


def _edges(graph: HeteroData, edge_set: tuple[str, str, str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(edge_index (2, E) long, edge_attr (E, channels) float32) of one edge set, checked."""
    if edge_set not in graph.edge_types:
        raise ValueError(
            f"The graph has no edge set {edge_set}; it has {graph.edge_types}. "
            "An encoder-processor-decoder needs data->hidden, hidden->hidden and hidden->data."
        )
    store = graph[edge_set]
    if "edge_attr" not in store:
        raise ValueError(f"graph[{edge_set}] has no edge_attr; build the graph with attributes.")
    edge_index, edge_attr = store.edge_index.long(), store.edge_attr.float()
    if edge_attr.dim() == 1:
        edge_attr = edge_attr.unsqueeze(-1)
    if (
        edge_index.dim() != 2
        or edge_index.shape[0] != 2
        or edge_attr.shape[0] != edge_index.shape[1]
    ):
        raise ValueError(
            f"graph[{edge_set}]: edge_index must be (2, E) and edge_attr (E, channels); got "
            f"{tuple(edge_index.shape)} and {tuple(edge_attr.shape)}."
        )
    source_set, _, target_set = edge_set
    for row, node_set in ((0, source_set), (1, target_set)):
        num_nodes = graph[node_set].x.shape[0]
        indices = edge_index[row]
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= num_nodes):
            raise ValueError(
                f"graph[{edge_set}].edge_index row {row} points outside the {num_nodes} "
                f"{node_set!r} nodes."
            )
    return edge_index, edge_attr


def _position_features(coordinates: torch.Tensor) -> torch.Tensor:
    """[sin lat, cos lat, sin lon, cos lon]: continuous across the dateline and the poles."""
    latitude, longitude = coordinates[:, 0], coordinates[:, 1]
    return torch.stack([latitude.sin(), latitude.cos(), longitude.sin(), longitude.cos()], dim=-1)


class EncoderProcessorDecoder(nn.Module):
    """Maps x (batch, data nodes, in_channels) to (batch, data nodes, out_channels) through the
    hidden mesh of `graph`. The graph lives in non-persistent buffers: it follows .to(device)
    but is not in state_dict (the exporter stores it separately; see `from_spec`)."""

    def __init__(
        self,
        graph: HeteroData,
        in_channels: int,
        out_channels: int,
        hidden_channels: int = 128,
        processor_layers: int = 6,
        mlp_hidden_layers: int = 1,
        activation: str = "SiLU",
        trainable_node_channels: int = 8,
        gradient_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        self._spec = {
            "in_channels": in_channels,
            "out_channels": out_channels,
            "hidden_channels": hidden_channels,
            "processor_layers": processor_layers,
            "mlp_hidden_layers": mlp_hidden_layers,
            "activation": activation,
            "trainable_node_channels": trainable_node_channels,
            "gradient_checkpointing": gradient_checkpointing,
        }
        data_coordinates = _node_coordinates(graph, "data")
        hidden_coordinates = _node_coordinates(graph, "hidden")
        self.num_data_nodes, self.num_hidden_nodes = len(data_coordinates), len(hidden_coordinates)
        self.register_buffer("data_positions", _position_features(data_coordinates), False)
        self.register_buffer("hidden_positions", _position_features(hidden_coordinates), False)
        edge_attr_channels = {}
        for name, edge_set in (
            ("encoder", ENCODER_EDGES),
            ("processor", PROCESSOR_EDGES),
            ("decoder", DECODER_EDGES),
        ):
            edge_index, edge_attr = _edges(graph, edge_set)
            self.register_buffer(f"{name}_edge_index", edge_index, persistent=False)
            self.register_buffer(f"{name}_edge_attr", edge_attr, persistent=False)
            edge_attr_channels[name] = edge_attr.shape[1]

        # Per-node learned features let the network tell apart nodes with similar positions
        # (and learn local climatology); zero-initialised so training starts from positions.
        self.data_node_parameters = nn.Parameter(
            torch.zeros(self.num_data_nodes, trainable_node_channels)
        )
        self.hidden_node_parameters = nn.Parameter(
            torch.zeros(self.num_hidden_nodes, trainable_node_channels)
        )
        mlp = {"num_hidden_layers": mlp_hidden_layers, "activation": activation}
        block = {"mlp_hidden_layers": mlp_hidden_layers, "activation": activation}
        self.data_embedding = MLP(
            in_channels + 4 + trainable_node_channels, hidden_channels, hidden_channels, **mlp
        )
        self.hidden_embedding = MLP(
            4 + trainable_node_channels, hidden_channels, hidden_channels, **mlp
        )
        self.encoder = GraphMapper(
            hidden_channels, edge_attr_channels["encoder"], update_sources=True, **block
        )
        self.processor = GraphProcessor(
            hidden_channels,
            edge_attr_channels["processor"],
            processor_layers,
            gradient_checkpointing=gradient_checkpointing,
            **block,
        )
        self.decoder = GraphMapper(hidden_channels, edge_attr_channels["decoder"], **block)
        # No output LayerNorm: the outputs are (normalised) physical values, not latents.
        self.output_mlp = MLP(
            hidden_channels, hidden_channels, out_channels, layer_norm=False, **mlp
        )

    @property
    def gradient_checkpointing(self) -> bool:
        return self.processor.gradient_checkpointing

    @gradient_checkpointing.setter
    def gradient_checkpointing(self, enabled: bool) -> None:
        # Memory/compute trade-off only: outputs and gradients are the same either way.
        self.processor.gradient_checkpointing = enabled
        self._spec["gradient_checkpointing"] = enabled

    @property
    def spec(self) -> dict[str, Any]:
        """The constructor arguments except the graph, JSON-able: `from_spec` rebuilds from it."""
        return dict(self._spec)

    def model_spec(self) -> dict[str, Any]:
        return self.spec

    @classmethod
    def from_spec(cls, graph: HeteroData, spec: dict[str, Any]) -> EncoderProcessorDecoder:
        return cls(graph, **spec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        expected = (self.num_data_nodes, self._spec["in_channels"])
        if x.dim() != 3 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"Expected input of shape (batch, {expected[0]} data nodes, {expected[1]} "
                f"channels), got {tuple(x.shape)}."
            )
        batch = x.shape[0]
        data_static = torch.cat([self.data_positions, self.data_node_parameters], dim=-1)
        data_nodes = self.data_embedding(torch.cat([x, data_static.expand(batch, -1, -1)], dim=-1))
        # Hidden nodes do not depend on the sample: embed once, broadcast over the batch.
        hidden_nodes = self.hidden_embedding(
            torch.cat([self.hidden_positions, self.hidden_node_parameters], dim=-1)
        ).expand(batch, -1, -1)

        data_nodes, hidden_nodes = self.encoder(
            data_nodes, hidden_nodes, self.encoder_edge_index, self.encoder_edge_attr
        )
        hidden_nodes = self.processor(
            hidden_nodes, self.processor_edge_index, self.processor_edge_attr
        )
        _, data_nodes = self.decoder(
            hidden_nodes, data_nodes, self.decoder_edge_index, self.decoder_edge_attr
        )
        return self.output_mlp(data_nodes)
