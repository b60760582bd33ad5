"""The network of several datasets at once: per-dataset encoders into one shared hidden mesh
and processor, per-dataset decoders (see squall.models.multi_dataset for the model around it).

Encoders update the shared hidden nodes one dataset after another (each a residual graph block,
in the order given), so every hidden node sees every input dataset near it. A dataset that is
also an input is decoded onto its encoded nodes (the skip the single-dataset network uses); an
output-only dataset starts from an embedding of its node positions, learned node features and
the extra target features it is given (computed forcings at the valid time).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch_geometric.data import HeteroData

from squall.models.graph_inputs import graph_edges, node_coordinates, position_features
from squall.models.layer_kernels import kernels_with_activation
from squall.models.mappers import GraphMapper
from squall.models.processors import Processor

PROCESSOR_EDGES = ("hidden", "to", "hidden")
# ModelConfig keys the multi-dataset network takes (config.multi_dataset refuses the settings
# it cannot honour, such as noise_channels)
NETWORK_KEYS = (
    "hidden_channels processor_layers mlp_hidden_layers mlp_hidden_ratio edge_latent_channels "
    "activation "
    "trainable_node_channels "
    "gradient_checkpointing processor mapper num_heads window_size num_chunks layer_kernels"
).split()


class MultiDatasetNetwork(nn.Module):
    """{name: (N, grid, in_channels)} of the input datasets (+ {name: (N, grid, target_channels)}
    for output-only datasets) -> {name: (N, grid, out_channels)} of the output datasets."""

    def __init__(
        self,
        graph: HeteroData,
        in_channels: dict[str, int],
        out_channels: dict[str, int],
        target_channels: int = 0,
        hidden_channels: int = 128,
        processor_layers: int = 6,
        mlp_hidden_layers: int = 1,
        activation: str = "SiLU",
        trainable_node_channels: int = 8,
        gradient_checkpointing: dict[str, bool] | bool = False,
        processor: str = "gnn",
        mapper: str = "gnn",
        num_heads: int = 4,
        window_size: int = 64,
        num_chunks: int = 1,
        layer_kernels: dict[str, dict[str, Any]] | None = None,
        mlp_hidden_ratio: float | None = None,
        edge_latent_channels: int | None = None,
    ) -> None:
        super().__init__()
        if isinstance(gradient_checkpointing, bool):
            gradient_checkpointing = dict.fromkeys(
                ("encoder", "processor", "decoder"), gradient_checkpointing
            )
        self.input_names, self.output_names = list(in_channels), list(out_channels)
        kernels = kernels_with_activation(layer_kernels, activation)
        mlp = {"num_hidden_layers": mlp_hidden_layers}
        static_channels = 4 + trainable_node_channels
        names = list(dict.fromkeys(self.input_names + self.output_names))
        self.num_nodes = {}
        for name in [*names, "hidden"]:
            coordinates = node_coordinates(graph, name)
            self.num_nodes[name] = len(coordinates)
            self.register_buffer(f"{name}_positions", position_features(coordinates), False)
        # Learned per-node features, zero-initialised (training starts from positions).
        self.node_parameters = nn.ParameterDict(
            {
                name: nn.Parameter(torch.zeros(self.num_nodes[name], trainable_node_channels))
                for name in [*names, "hidden"]
            }
        )
        mapper_args = {
            "mlp_hidden_layers": mlp_hidden_layers,
            "kernels": kernels,
            "num_heads": num_heads,
            "num_chunks": num_chunks,
            "mlp_hidden_ratio": mlp_hidden_ratio,
            "edge_latent_channels": edge_latent_channels,
        }

        def edges(edge_set: tuple[str, str, str], role: str) -> int:
            """Registers the edge set's buffers; returns its number of attribute channels."""
            edge_index, edge_attr = graph_edges(graph, edge_set)
            self.register_buffer(f"{role}_edge_index", edge_index, persistent=False)
            self.register_buffer(f"{role}_edge_attr", edge_attr, persistent=False)
            return edge_attr.shape[1]

        self.data_embeddings, self.encoders = nn.ModuleDict(), nn.ModuleDict()
        for name, channels in in_channels.items():
            self.data_embeddings[name] = kernels.mlp(
                channels + static_channels, hidden_channels, hidden_channels, **mlp
            )
            self.encoders[name] = GraphMapper(
                mapper,
                hidden_channels,
                edges((name, "to", "hidden"), f"{name}_encoder"),
                getattr(self, f"{name}_encoder_edge_index"),
                self.num_nodes["hidden"],
                update_sources=name in out_channels,  # its nodes are decoded onto again
                gradient_checkpointing=gradient_checkpointing["encoder"],
                **mapper_args,
            )
        self.hidden_embedding = kernels.mlp(
            static_channels, hidden_channels, hidden_channels, **mlp
        )
        self.processor = Processor(
            processor,
            hidden_channels,
            edges(PROCESSOR_EDGES, "processor"),
            processor_layers,
            mlp_hidden_layers,
            kernels,
            num_heads=num_heads,
            window_size=window_size,
            gradient_checkpointing=gradient_checkpointing["processor"],
            mlp_hidden_ratio=mlp_hidden_ratio,
            edge_latent_channels=edge_latent_channels,
        )
        self.target_embeddings, self.decoders = nn.ModuleDict(), nn.ModuleDict()
        self.output_mlps = nn.ModuleDict()
        for name, channels in out_channels.items():
            if name not in in_channels:
                self.target_embeddings[name] = kernels.mlp(
                    target_channels + static_channels, hidden_channels, hidden_channels, **mlp
                )
            self.decoders[name] = GraphMapper(
                mapper,
                hidden_channels,
                edges(("hidden", "to", name), f"{name}_decoder"),
                getattr(self, f"{name}_decoder_edge_index"),
                self.num_nodes[name],
                gradient_checkpointing=gradient_checkpointing["decoder"],
                **mapper_args,
            )
            self.output_mlps[name] = kernels.mlp(
                hidden_channels, hidden_channels, channels, layer_norm=False, **mlp
            )

    def _static(self, name: str, batch: int) -> torch.Tensor:
        static = torch.cat([getattr(self, f"{name}_positions"), self.node_parameters[name]], -1)
        return static.expand(batch, -1, -1)

    def forward(
        self, inputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]:
        targets = targets or {}
        batch = inputs[self.input_names[0]].shape[0]
        hidden = self.hidden_embedding(self._static("hidden", 1)).expand(batch, -1, -1)
        encoded = {}
        for name in self.input_names:
            static = self._static(name, batch)
            nodes = self.data_embeddings[name](torch.cat([inputs[name], static], -1))
            encoded[name], hidden = self.encoders[name](
                nodes,
                hidden,
                getattr(self, f"{name}_encoder_edge_index"),
                getattr(self, f"{name}_encoder_edge_attr"),
            )
        hidden = self.processor(hidden, self.processor_edge_index, self.processor_edge_attr)
        outputs = {}
        for name in self.output_names:
            if name in encoded:
                nodes = encoded[name]
            else:
                static = self._static(name, batch)
                extra = targets.get(name, static[..., :0])
                nodes = self.target_embeddings[name](torch.cat([extra, static], -1))
            _, nodes = self.decoders[name](
                hidden,
                nodes,
                getattr(self, f"{name}_decoder_edge_index"),
                getattr(self, f"{name}_decoder_edge_attr"),
            )
            outputs[name] = self.output_mlps[name](nodes)
        return outputs
