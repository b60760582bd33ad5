"""Several datasets at once: per-dataset encoders into one shared hidden mesh and processor,
per-dataset decoders. Downscaling is the case of an input-only (coarse) and an output-only
(fine) dataset, each on its own grid.

The graph has a node set per dataset, named after it (squall.graphs.multi_dataset). Encoders
update the shared hidden nodes one dataset after another (each a residual graph block, in the
order of the spec), so every hidden node sees every input dataset near it. A dataset that is
also an input is decoded onto its encoded nodes (the skip the single-dataset network uses); an
output-only dataset starts from an embedding of its node positions, learned node features and
computed forcings at the valid time.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch_geometric.data import HeteroData

from squall.models.computed_forcings import computed_forcings
from squall.models.graph_inputs import graph_edges, node_coordinates, position_features
from squall.models.interface import _roles
from squall.models.layer_kernels import kernels_with_activation
from squall.models.mappers import GraphMapper
from squall.models.preprocessing import Preprocessor
from squall.models.processors import Processor

PROCESSOR_EDGES = ("hidden", "to", "hidden")
# ModelConfig keys the multi-dataset network takes (the others are refused by the config check)
NETWORK_KEYS = (
    "hidden_channels processor_layers mlp_hidden_layers activation trainable_node_channels "
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
            x = inputs[name]
            if x.dim() != 3 or x.shape[1] != self.num_nodes[name]:
                raise ValueError(
                    f"dataset {name!r}: expected (batch, {self.num_nodes[name]} nodes, channels), "
                    f"got {tuple(x.shape)}"
                )
            nodes = self.data_embeddings[name](torch.cat([x, self._static(name, batch)], -1))
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


class DatasetSide(nn.Module):
    """One dataset's variables, roles, normaliser and coordinates, as the model uses them."""

    def __init__(
        self,
        graph: HeteroData,
        name: str,
        roles: dict[str, list[str]],
        statistics: dict[str, list[float]],
        preprocessing: dict[str, Any] | None,
        residual: bool,
    ) -> None:
        super().__init__()
        variables = roles["variables"]
        self.variables = list(variables)
        self.input_variables, self.output_variables = _roles(roles)
        prognostic = [v for v in self.output_variables if v in self.input_variables]
        index = {v: i for i, v in enumerate(variables)}

        def columns(names: list[str]) -> torch.Tensor:
            return torch.tensor([index[v] for v in names], dtype=torch.long)

        self.register_buffer("input_columns", columns(self.input_variables), False)
        self.register_buffer("output_columns", columns(self.output_variables), False)
        self.register_buffer("prognostic_columns", columns(prognostic), False)
        self.register_buffer(
            "prognostic_in_output",
            torch.tensor([self.output_variables.index(v) for v in prognostic], dtype=torch.long),
            False,
        )
        self.normalizer = Preprocessor(variables, statistics, preprocessing)
        # As in ForecastModel: prognostic outputs are a tendency scaled by its own spread.
        # Without a residual (downscaling: the target is at the input time) the scale is unused.
        ratio = torch.as_tensor(statistics["tendency_stdev"], dtype=torch.float32)
        ratio = ratio / self.normalizer.scale
        remapped = torch.tensor([v in self.normalizer.remaps for v in variables])
        ratio = torch.where(remapped, 1.0, ratio)
        self.residual = residual and bool(prognostic)
        self.register_buffer("tendency_scale", ratio[self.prognostic_columns].clone())
        coordinates = graph[name].x.float()
        self.register_buffer("latitudes", coordinates[:, 0].clone(), False)
        self.register_buffer("longitudes", coordinates[:, 1].clone(), False)
        self.forced = None  # no limited-area boundary with several datasets (as ForecastModel's)

    def next_input_state(self, prediction: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        """Predicted prognostic variables, known values (read from the data) for the rest."""
        prognostic = prediction[..., self.prognostic_in_output].to(known.dtype)
        return known.index_copy(-1, self.prognostic_columns, prognostic)


class MultiDatasetModel(nn.Module):
    """{name: x (batch, time, ensemble, grid, variable)} -> {name: (batch, ensemble, grid, out)}.

    `spec` keys: datasets ({name: {variables, forcing, diagnostic}}, inputs first in the order
    the encoders run), computed_forcings, input_steps, timestep_seconds, lead_steps (1: predict
    the next step, with prognostic residuals; 0: predict at the last input time, as a
    downscaler does), network (MultiDatasetNetwork arguments without channels), preprocessing.
    `statistics`: {name: statistics of that dataset's variables} (as ForecastModel takes them).
    """

    def __init__(
        self, graph: HeteroData, spec: dict[str, Any], statistics: dict[str, dict[str, list]]
    ) -> None:
        super().__init__()
        self.spec = spec
        residual = spec["lead_steps"] > 0
        self.datasets = nn.ModuleDict(
            {
                name: DatasetSide(
                    graph, name, roles, statistics[name], spec.get("preprocessing"), residual
                )
                for name, roles in spec["datasets"].items()
            }
        )
        forcings = len(spec["computed_forcings"])
        self.input_names = [n for n, side in self.datasets.items() if side.input_variables]
        self.output_names = [n for n, side in self.datasets.items() if side.output_variables]
        self.network = MultiDatasetNetwork(
            graph,
            in_channels={
                name: spec["input_steps"] * len(self.datasets[name].input_variables) + forcings
                for name in self.input_names
            },
            out_channels={n: len(self.datasets[n].output_variables) for n in self.output_names},
            target_channels=forcings,
            **spec["network"],
        )
        # Start from zero outputs: persistence for prognostic variables, the mean otherwise.
        for head in self.network.output_mlps.values():
            last_linear = [m for m in head.modules() if isinstance(m, nn.Linear)][-1]
            nn.init.zeros_(last_linear.weight)
            nn.init.zeros_(last_linear.bias)

    @property
    def input_steps(self) -> int:
        return self.spec["input_steps"]

    @property
    def timestep_seconds(self) -> int:
        return self.spec["timestep_seconds"]

    @property
    def lead_steps(self) -> int:
        return self.spec["lead_steps"]

    def _forcings(self, name: str, valid_time: torch.Tensor, members: int) -> torch.Tensor:
        side = self.datasets[name]
        values = computed_forcings(
            self.spec["computed_forcings"], valid_time, side.latitudes, side.longitudes
        )
        batch, grid, channels = values.shape
        return values[:, None].expand(batch, members, grid, channels).reshape(-1, grid, channels)

    def forward_normalised(
        self, x: dict[str, torch.Tensor], valid_time: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Normalised inputs {name: (B, T, E, G, V)} of the input datasets, valid times (B,) ->
        normalised outputs {name: (B, E, G, V_out)} of the output datasets."""
        missing = [name for name in self.input_names if name not in x]
        if missing:
            raise ValueError(f"the model reads the datasets {missing}, which were not given")
        features, shapes = {}, {}
        for name in self.input_names:
            side, values = self.datasets[name], x[name]
            batch, steps, members, grid, _ = values.shape
            if steps != self.input_steps:
                raise ValueError(
                    f"dataset {name!r}: the model takes {self.input_steps} input steps, got {steps}"
                )
            inputs = (
                values[..., side.input_columns]
                .permute(0, 2, 3, 1, 4)
                .reshape(batch * members, grid, steps * len(side.input_variables))
            )
            forcings = self._forcings(name, valid_time, members).to(inputs.dtype)
            features[name] = torch.cat([inputs, forcings], dim=-1)
            shapes[name] = (batch, members)
        batch, members = shapes[self.input_names[0]]
        targets = {
            name: self._forcings(name, valid_time, members)
            for name in self.output_names
            if name not in features
        }
        outputs = self.network(features, targets)
        result = {}
        for name, out in outputs.items():
            side = self.datasets[name]
            out = out.reshape(batch, members, out.shape[1], out.shape[2])
            if side.residual:
                last = x[name][:, -1][..., side.prognostic_columns]
                prognostic = last + out[..., side.prognostic_in_output] * side.tendency_scale
                out = out.index_copy(-1, side.prognostic_in_output, prognostic.to(out.dtype))
            result[name] = out
        return result

    @torch.no_grad()
    def predict(
        self, x: dict[str, torch.Tensor], last_input_time: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Physical inputs {name: (B, T, E, G, V)} -> physical outputs {name: (B, E, G, V_out)}
        at lead_steps steps after the last input time (0: at that time, for a downscaler)."""
        normalised = {
            name: self.datasets[name].normalizer.normalise(x[name]) for name in self.input_names
        }
        valid_time = last_input_time + self.lead_steps * self.timestep_seconds
        outputs = self.forward_normalised(normalised, valid_time)
        return {
            name: self.datasets[name].normalizer.denormalise(
                out, self.datasets[name].output_columns
            )
            for name, out in outputs.items()
        }
