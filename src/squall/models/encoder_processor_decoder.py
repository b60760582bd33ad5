"""The graph encoder-processor-decoder network: data grid -> hidden mesh -> data grid."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint
from torch_geometric.data import HeteroData

from squall.models.graph_inputs import graph_edges, node_coordinates, position_features
from squall.models.hierarchical import HierarchicalProcessor
from squall.models.layer_kernels import kernels_with_activation
from squall.models.mappers import GraphMapper
from squall.models.processors import Processor

ENCODER_EDGES = ("data", "to", "hidden")
PROCESSOR_EDGES = ("hidden", "to", "hidden")
DECODER_EDGES = ("hidden", "to", "data")


GRAPH_COMPONENTS = ("encoder", "processor", "decoder")


def _checkpointing_flags(setting: bool | dict[str, bool]) -> dict[str, bool]:
    """gradient_checkpointing as given (True: every component) -> one flag per component."""
    if isinstance(setting, bool):
        return dict.fromkeys(GRAPH_COMPONENTS, setting)
    unknown = sorted(set(setting) - set(GRAPH_COMPONENTS))
    if unknown:
        raise ValueError(
            f"gradient_checkpointing has unknown components {unknown}; use {GRAPH_COMPONENTS}."
        )
    return {name: bool(setting.get(name, False)) for name in GRAPH_COMPONENTS}


class EncoderProcessorDecoder(nn.Module):
    """Maps x (batch, data nodes, in_channels) to (batch, data nodes, out_channels) through the
    hidden mesh of `graph`. The graph lives in non-persistent buffers: it follows .to(device)
    but is not in state_dict (the exporter stores it separately; see `from_spec`). Edges are
    sorted by target node once here (chunking and contiguous scatters rely on it).

    processor: "gnn" | "graphtransformer" | "transformer"; mapper: "gnn" | "graphtransformer".
    num_chunks splits the mappers' target nodes (see blocks.target_chunks). noise_channels > 0
    makes the ensemble variant: forward draws noise (batch, noise_channels) per sample (or takes
    `noise`) and the processor's layer norms are conditioned on it. hierarchy_levels > 1 makes
    the hierarchical variant (see hierarchical.py for the graph it needs); processor_layers is
    then the number of layers at each stop of the down and up sweeps. mlp_hidden_ratio sets the
    width of the processor and mapper blocks' MLPs (x hidden_channels; None: GNN 1, attention 2),
    edge_latent_channels the width of their learned edge latents (None: hidden_channels).
    """

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
        trainable_edge_channels: int = 0,
        gradient_checkpointing: bool | dict[str, bool] = False,
        processor: str = "gnn",
        mapper: str = "gnn",
        num_heads: int = 4,
        window_size: int = 64,
        num_chunks: int = 1,
        layer_kernels: dict[str, dict[str, Any]] | None = None,
        noise_channels: int = 0,
        hierarchy_levels: int = 1,
        decoder_skip: bool = True,
        mlp_hidden_ratio: float | None = None,
        edge_latent_channels: int | None = None,
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
            "trainable_edge_channels": trainable_edge_channels,
            "gradient_checkpointing": _checkpointing_flags(gradient_checkpointing),
            "processor": processor,
            "mapper": mapper,
            "num_heads": num_heads,
            "window_size": window_size,
            "num_chunks": num_chunks,
            "layer_kernels": layer_kernels,
            "noise_channels": noise_channels,
            "hierarchy_levels": hierarchy_levels,
            "decoder_skip": decoder_skip,
            "mlp_hidden_ratio": mlp_hidden_ratio,
            "edge_latent_channels": edge_latent_channels,
        }
        kernels = kernels_with_activation(layer_kernels, activation)
        data_coordinates = node_coordinates(graph, "data")
        hidden_coordinates = node_coordinates(graph, "hidden")
        self.num_data_nodes, self.num_hidden_nodes = len(data_coordinates), len(hidden_coordinates)
        self.register_buffer("data_positions", position_features(data_coordinates), False)
        self.register_buffer("hidden_positions", position_features(hidden_coordinates), False)
        edge_channels, edge_indices = {}, {}
        uses_edges = {"encoder": True, "processor": processor != "transformer", "decoder": True}
        for name, edge_set in zip(
            GRAPH_COMPONENTS, (ENCODER_EDGES, PROCESSOR_EDGES, DECODER_EDGES), strict=True
        ):
            edge_index, edge_attr = graph_edges(graph, edge_set)
            self.register_buffer(f"{name}_edge_index", edge_index, persistent=False)
            self.register_buffer(f"{name}_edge_attr", edge_attr, persistent=False)
            edge_indices[name] = edge_index
            edge_channels[name] = edge_attr.shape[1] + trainable_edge_channels
            if trainable_edge_channels and uses_edges[name]:
                # Learned per-edge features, zero-initialised (training starts from geometry).
                self.register_parameter(
                    f"{name}_edge_parameters",
                    nn.Parameter(torch.zeros(edge_index.shape[1], trainable_edge_channels)),
                )

        # Per-node learned features let the network tell apart nodes with similar positions
        # (and learn local climatology); zero-initialised so training starts from positions.
        self.data_node_parameters = nn.Parameter(
            torch.zeros(self.num_data_nodes, trainable_node_channels)
        )
        self.hidden_node_parameters = nn.Parameter(
            torch.zeros(self.num_hidden_nodes, trainable_node_channels)
        )
        mlp = {"num_hidden_layers": mlp_hidden_layers}
        static_channels = 4 + trainable_node_channels
        self.data_embedding = kernels.mlp(
            in_channels + static_channels, hidden_channels, hidden_channels, **mlp
        )
        self.hidden_embedding = kernels.mlp(
            static_channels, hidden_channels, hidden_channels, **mlp
        )
        # Without the skip (autoencoder) the decoder queries the data nodes from their static
        # features alone: everything it outputs has passed through the hidden mesh.
        self.data_query_embedding = (
            None
            if decoder_skip
            else kernels.mlp(static_channels, hidden_channels, hidden_channels, **mlp)
        )
        flags = self._spec["gradient_checkpointing"]
        mapper_args = {
            "mlp_hidden_layers": mlp_hidden_layers,
            "kernels": kernels,
            "num_heads": num_heads,
            "num_chunks": num_chunks,
            "mlp_hidden_ratio": mlp_hidden_ratio,
            "edge_latent_channels": edge_latent_channels,
        }
        self.encoder = GraphMapper(
            mapper,
            hidden_channels,
            edge_channels["encoder"],
            edge_indices["encoder"],
            self.num_hidden_nodes,
            update_sources=True,
            gradient_checkpointing=flags["encoder"],
            **mapper_args,
        )
        if hierarchy_levels > 1:
            if trainable_edge_channels:
                raise ValueError(
                    "trainable_edge_channels is not supported with hierarchy_levels > 1"
                )
            self.processor = HierarchicalProcessor(
                graph,
                hierarchy_levels,
                processor,
                mapper,
                hidden_channels,
                edge_channels["processor"],
                processor_layers,
                mlp_hidden_layers,
                kernels,
                num_heads,
                trainable_node_channels,
                condition_channels=noise_channels,
                gradient_checkpointing=flags["processor"],
                mlp_hidden_ratio=mlp_hidden_ratio,
                edge_latent_channels=edge_latent_channels,
            )
        else:
            self.processor = Processor(
                processor,
                hidden_channels,
                edge_channels["processor"],
                processor_layers,
                mlp_hidden_layers,
                kernels,
                num_heads=num_heads,
                window_size=window_size,
                condition_channels=noise_channels,
                gradient_checkpointing=flags["processor"],
                mlp_hidden_ratio=mlp_hidden_ratio,
                edge_latent_channels=edge_latent_channels,
            )
        self.decoder = GraphMapper(
            mapper,
            hidden_channels,
            edge_channels["decoder"],
            edge_indices["decoder"],
            self.num_data_nodes,
            gradient_checkpointing=flags["decoder"],
            **mapper_args,
        )
        # No output norm: the outputs are (normalised) physical values, not latents.
        self.output_mlp = kernels.mlp(
            hidden_channels, hidden_channels, out_channels, layer_norm=False, **mlp
        )
        # Model sharding (squall.distributed.grid_sharding) sets this rank's shard layout; the
        # forward then takes and returns only that shard of the grid.
        self.grid_sharding = None

    @property
    def grid_points(self) -> slice:
        """The data points this network takes and returns: all, or this rank's grid shard."""
        return slice(None) if self.grid_sharding is None else self.grid_sharding.data_points

    @property
    def gradient_checkpointing(self) -> dict[str, bool]:
        return dict(self._spec["gradient_checkpointing"])

    @gradient_checkpointing.setter
    def gradient_checkpointing(self, setting: bool | dict[str, bool]) -> None:
        # Memory/compute trade-off only: outputs and gradients are the same either way.
        flags = _checkpointing_flags(setting)
        for name in GRAPH_COMPONENTS:
            getattr(self, name).gradient_checkpointing = flags[name]
        self._spec["gradient_checkpointing"] = flags

    @property
    def spec(self) -> dict[str, Any]:
        """The constructor arguments except the graph, JSON-able: `from_spec` rebuilds from it."""
        return copy.deepcopy(self._spec)

    def model_spec(self) -> dict[str, Any]:
        return self.spec

    @classmethod
    def from_spec(cls, graph: HeteroData, spec: dict[str, Any]) -> EncoderProcessorDecoder:
        return cls(graph, **spec)

    def _edge_inputs(self, name: str) -> torch.Tensor:
        edge_attr = getattr(self, f"{name}_edge_attr")
        parameters = getattr(self, f"{name}_edge_parameters", None)
        return edge_attr if parameters is None else torch.cat([edge_attr, parameters], dim=-1)

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        if self.grid_sharding is not None:
            return self.grid_sharding.forward(self, x, noise)
        expected = (self.num_data_nodes, self._spec["in_channels"])
        if x.dim() != 3 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"Expected input of shape (batch, {expected[0]} data nodes, {expected[1]} "
                f"channels), got {tuple(x.shape)}."
            )
        batch = x.shape[0]
        noise_channels = self._spec["noise_channels"]
        if noise_channels and noise is None:
            noise = torch.randn(batch, noise_channels, device=x.device, dtype=x.dtype)
        data_static = torch.cat([self.data_positions, self.data_node_parameters], dim=-1)
        data_nodes = self.grid_mlp(
            "encoder", self.data_embedding, torch.cat([x, data_static.expand(batch, -1, -1)], -1)
        )
        # Hidden nodes do not depend on the sample: embed once, broadcast over the batch.
        hidden_nodes = self.hidden_embedding(
            torch.cat([self.hidden_positions, self.hidden_node_parameters], dim=-1)
        ).expand(batch, -1, -1)

        data_nodes, hidden_nodes = self.encoder(
            data_nodes, hidden_nodes, self.encoder_edge_index, self._edge_inputs("encoder")
        )
        hidden_nodes = self.processor(
            hidden_nodes,
            self.processor_edge_index,
            self._edge_inputs("processor"),
            noise if noise_channels else None,
        )
        if self.data_query_embedding is not None:
            data_nodes = self.data_query_embedding(data_static).expand(batch, -1, -1)
        _, data_nodes = self.decoder(
            hidden_nodes, data_nodes, self.decoder_edge_index, self._edge_inputs("decoder")
        )
        return self.grid_mlp("decoder", self.output_mlp, data_nodes)

    def grid_mlp(self, component: str, mlp: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """The grid's embedding (or read-out) MLP, recomputed in backward when `component` is
        checkpointed (the sharded forward calls it too): its activations are several copies of
        the grid's latents, which would otherwise stay alive until the end of backward."""
        if self._spec["gradient_checkpointing"][component] and torch.is_grad_enabled():
            return checkpoint(mlp, x, use_reentrant=False)
        return mlp(x)
