"""Hierarchical processor: several mesh levels, processed in a down sweep and an up sweep.

Graph contract (squall.graphs' hierarchical recipes): level 0 is the node set "hidden", level
l > 0 is "hidden_<l+1>" ("hidden_2", "hidden_3", ..., coarser as l grows); an edge set within
each level, one from each level down to the next coarser and one back up. The sweep (U-Net-like):
  down: for l = 0 .. L-2: process level l, keep it as a skip, map it down onto level l+1
  bottom: process level L-1
  up:   for l = L-2 .. 0: map up onto the skip of level l (residual), process level l
Coarse levels start from an embedding of their positions and trainable node features. Same call
as Processor: forward(x, edge_index, edge_attr, condition) with level 0's edges.
"""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.data import HeteroData

from squall.models.graph_inputs import graph_edges, node_coordinates, position_features
from squall.models.layer_kernels import LayerKernels
from squall.models.mappers import GraphMapper
from squall.models.processors import Processor


def level_name(level: int) -> str:
    return "hidden" if level == 0 else f"hidden_{level + 1}"


class HierarchicalProcessor(nn.Module):
    def __init__(
        self,
        graph: HeteroData,
        num_levels: int,
        kind: str,
        mapper: str,
        channels: int,
        edge_attr_channels: int,
        num_layers: int,
        mlp_hidden_layers: int,
        kernels: LayerKernels,
        num_heads: int,
        trainable_node_channels: int,
        condition_channels: int = 0,
        gradient_checkpointing: bool = False,
        mlp_hidden_ratio: float | None = None,
        edge_latent_channels: int | None = None,
    ) -> None:
        super().__init__()
        if kind == "transformer":
            raise ValueError(
                "the hierarchical processor needs a graph processor (gnn or graphtransformer)"
            )
        self.num_levels = num_levels
        levels = [level_name(level) for level in range(num_levels)]
        processor_args = {
            "mlp_hidden_layers": mlp_hidden_layers,
            "kernels": kernels,
            "num_heads": num_heads,
            "condition_channels": condition_channels,
            "gradient_checkpointing": gradient_checkpointing,
            "mlp_hidden_ratio": mlp_hidden_ratio,
            "edge_latent_channels": edge_latent_channels,
        }

        def level_processor() -> Processor:
            return Processor(kind, channels, edge_attr_channels, num_layers, **processor_args)

        def edges(name: str, source: str, target: str) -> tuple[torch.Tensor, int]:
            edge_index, edge_attr = graph_edges(graph, (source, "to", target))
            if edge_attr.shape[1] != edge_attr_channels:
                raise ValueError(
                    f"graph[({source}, to, {target})] has {edge_attr.shape[1]} edge attributes; "
                    f"the hierarchy needs {edge_attr_channels} on every edge set."
                )
            self.register_buffer(f"{name}_edge_index", edge_index, persistent=False)
            self.register_buffer(f"{name}_edge_attr", edge_attr, persistent=False)
            return edge_index

        self.down_processors = nn.ModuleList(level_processor() for _ in range(num_levels))
        self.up_processors = nn.ModuleList(level_processor() for _ in range(num_levels - 1))
        self.down_mappers, self.up_mappers = nn.ModuleList(), nn.ModuleList()
        self.coarse_node_parameters = nn.ParameterList()
        mapper_args = {
            "mlp_hidden_layers": mlp_hidden_layers,
            "kernels": kernels,
            "num_heads": num_heads,
            "gradient_checkpointing": gradient_checkpointing,
            "mlp_hidden_ratio": mlp_hidden_ratio,
            "edge_latent_channels": edge_latent_channels,
        }
        for level in range(1, num_levels):
            fine, coarse = levels[level - 1], levels[level]
            coordinates = node_coordinates(graph, coarse)
            self.register_buffer(f"level{level}_positions", position_features(coordinates), False)
            self.coarse_node_parameters.append(
                nn.Parameter(torch.zeros(len(coordinates), trainable_node_channels))
            )
            edges(f"level{level}", coarse, coarse)
            down = edges(f"down{level}", fine, coarse)
            up = edges(f"up{level}", coarse, fine)
            num_fine = node_coordinates(graph, fine).shape[0]
            self.down_mappers.append(
                GraphMapper(
                    mapper, channels, edge_attr_channels, down, len(coordinates), **mapper_args
                )
            )
            self.up_mappers.append(
                GraphMapper(mapper, channels, edge_attr_channels, up, num_fine, **mapper_args)
            )
        self.coarse_embedding = kernels.mlp(
            4 + trainable_node_channels, channels, channels, num_hidden_layers=mlp_hidden_layers
        )
        self.gradient_checkpointing = gradient_checkpointing

    @property
    def gradient_checkpointing(self) -> bool:
        return self._gradient_checkpointing

    @gradient_checkpointing.setter
    def gradient_checkpointing(self, enabled: bool) -> None:
        self._gradient_checkpointing = enabled
        for module in self.modules():
            if module is not self and hasattr(module, "gradient_checkpointing"):
                module.gradient_checkpointing = enabled

    def forward(
        self,
        x: torch.Tensor,
        edge_index: torch.Tensor,
        edge_attr: torch.Tensor,
        condition: torch.Tensor | None = None,
    ) -> torch.Tensor:
        batch = x.shape[0]
        level_edges = [(edge_index, edge_attr)] + [
            (getattr(self, f"level{level}_edge_index"), getattr(self, f"level{level}_edge_attr"))
            for level in range(1, self.num_levels)
        ]
        skips = []
        for level in range(self.num_levels - 1):
            x = self.down_processors[level](x, *level_edges[level], condition)
            skips.append(x)
            static = torch.cat(
                [getattr(self, f"level{level + 1}_positions"), self.coarse_node_parameters[level]],
                dim=-1,
            )
            coarse = self.coarse_embedding(static).expand(batch, -1, -1)
            _, x = self.down_mappers[level](
                x,
                coarse,
                getattr(self, f"down{level + 1}_edge_index"),
                getattr(self, f"down{level + 1}_edge_attr"),
            )
        x = self.down_processors[-1](x, *level_edges[-1], condition)
        for level in reversed(range(self.num_levels - 1)):
            _, x = self.up_mappers[level](
                x,
                skips[level],
                getattr(self, f"up{level + 1}_edge_index"),
                getattr(self, f"up{level + 1}_edge_attr"),
            )
            x = self.up_processors[level](x, *level_edges[level], condition)
        return x
