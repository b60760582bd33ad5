"""Several datasets at once: the model users see, with per-dataset variables, roles and
normalisers around squall.models.multi_dataset_network. Downscaling is the case of an
input-only (coarse) and an output-only (fine) dataset, each on its own grid; the graph has a
node set per dataset, named after it (squall.graphs.multi_dataset).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch_geometric.data import HeteroData

from squall.models.computed_forcings import computed_forcings
from squall.models.diffusion import build_forecast_model
from squall.models.grid_interpolation import interpolate, linear_weights
from squall.models.interface import register_variable_roles
from squall.models.multi_dataset_network import NETWORK_KEYS, MultiDatasetNetwork
from squall.models.preprocessing import Preprocessor

__all__ = ["NETWORK_KEYS", "MultiDatasetModel", "is_multi_dataset", "model_from_spec"]


def is_multi_dataset(spec: dict[str, Any]) -> bool:
    """Whether a model spec (checkpoints and exported models carry it) is a MultiDatasetModel's."""
    return "datasets" in spec


def model_from_spec(graph: HeteroData, spec: dict[str, Any], statistics: dict) -> nn.Module:
    """The model class a spec describes: several datasets, else one (build_forecast_model)."""
    if is_multi_dataset(spec):
        return MultiDatasetModel(graph, spec, statistics)
    return build_forecast_model(graph, spec, statistics)


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
        self.normalizer = Preprocessor(variables, statistics, preprocessing)
        register_variable_roles(self, roles, statistics, self.normalizer)
        # As in ForecastModel, but without a residual (downscaling: the target is at the input
        # time) the tendency scale is unused.
        self.residual = residual and len(self.prognostic_columns) > 0
        coordinates = graph[name].x.float()
        self.register_buffer("latitudes", coordinates[:, 0].clone(), False)
        self.register_buffer("longitudes", coordinates[:, 1].clone(), False)
        self.forced = None  # no limited-area boundary with several datasets (as ForecastModel's)

    def next_input_state(self, prediction: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        """Predicted prognostic variables, known values (read from the data) for the rest."""
        prognostic = prediction[..., self.prognostic_in_output].to(known.dtype)
        return known.index_copy(-1, self.prognostic_columns, prognostic)


class InterpolatedStart(nn.Module):
    """A downscaler's starting point for an output-only dataset: the fields of the same names in
    an input dataset, interpolated onto its grid (grid_interpolation: bilinear from a regular
    grid), in its own normalisation. The network then predicts the departure from it, so an
    untrained downscaler is that interpolation."""

    def __init__(
        self,
        graph: HeteroData,
        source: DatasetSide,
        source_name: str,
        target: DatasetSide,
        target_name: str,
    ) -> None:
        super().__init__()
        self.source_name = source_name
        shared = [v for v in target.output_variables if v in source.variables]
        self.variables = shared

        def tensor(values: list[int]) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.long)

        self.register_buffer(
            "source_columns", tensor([source.variables.index(v) for v in shared]), False
        )
        self.register_buffer(
            "target_columns", tensor([target.variables.index(v) for v in shared]), False
        )
        self.register_buffer(
            "output_positions", tensor([target.output_variables.index(v) for v in shared]), False
        )
        index, weights = linear_weights(
            graph[source_name].x.double().numpy(), graph[target_name].x.double().numpy()
        )
        self.register_buffer("index", index, False)
        self.register_buffer("weights", weights, False)

    def forward(
        self, source_state: torch.Tensor, source: DatasetSide, target: DatasetSide
    ) -> torch.Tensor:
        """Normalised source state (B, E, G_source, V_source) -> (B, E, G_target, shared)."""
        physical = source.normalizer.denormalise(
            source_state[..., self.source_columns], self.source_columns
        )
        interpolated = interpolate(physical, self.index, self.weights)
        return target.normalizer.normalise(interpolated, self.target_columns)


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
        # A downscaler's output-only datasets start from their input namesakes, interpolated.
        self.starts = nn.ModuleDict()
        for name in self.output_names if spec["lead_steps"] == 0 else []:
            target = self.datasets[name]
            sources = [
                n
                for n in self.input_names
                if n != name and set(target.output_variables) & set(self.datasets[n].variables)
            ]
            if sources:
                self.starts[name] = InterpolatedStart(
                    graph, self.datasets[sources[0]], sources[0], target, name
                )
        # Start from zero outputs: persistence for prognostic variables, the interpolated
        # input for a downscaler's namesakes, the mean otherwise.
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
            if grid != len(side.latitudes):
                raise ValueError(
                    f"dataset {name!r}: expected (batch, time, ensemble, {len(side.latitudes)} "
                    f"grid points, variables), got {tuple(values.shape)}"
                )
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
            if name in self.starts:
                start = self.starts[name]
                source = self.datasets[start.source_name]
                base = start(x[start.source_name][:, -1], source, side)
                positions = start.output_positions
                out = out.index_copy(-1, positions, (out[..., positions] + base).to(out.dtype))
            result[name] = out
        return result

    def variables_summary(self) -> dict[str, Any]:
        """Per dataset: all, input, output, forcing and diagnostic variables (export metadata)."""
        summary: dict[str, Any] = {"computed_forcings": list(self.spec["computed_forcings"])}
        for name, side in self.datasets.items():
            roles = self.spec["datasets"][name]
            summary[name] = {
                "all": side.variables,
                "input": side.input_variables,
                "output": side.output_variables,
                "forcing": roles["forcing"],
                "diagnostic": roles["diagnostic"],
            }
        return summary

    def rollout_normalised(
        self,
        state: dict[str, torch.Tensor],
        valid_times: torch.Tensor,
        known: dict[str, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Autoregressive steps of a forecaster, all normalised: inputs {name: (B, T, E, G, V)}
        of the input datasets, valid times (B, steps) of the steps, and `known` {name: (B,
        steps, E, G, V)}, the data at each step for the input variables the model does not
        predict (None when it predicts them all) -> {name: (B, steps, E, G, V_out)}."""
        if self.lead_steps == 0:
            raise ValueError("a downscaler predicts at its input time: it has no rollout")
        if known is None and self.needs_known_inputs:
            raise ValueError(
                "the model reads input variables it does not predict (forcings, or an input-only "
                "dataset): pass their values at each step as `known`"
            )
        state = dict(state)
        outputs: dict[str, list[torch.Tensor]] = {name: [] for name in self.output_names}
        for step in range(valid_times.shape[1]):
            prediction = self.forward_normalised(state, valid_times[:, step])
            for name, values in prediction.items():
                outputs[name].append(values)
            for name in self.input_names:  # next state: prognostic fed back, the rest read
                side = self.datasets[name]
                # without `known`, every input variable is predicted: the last state is a base
                base = known[name][:, step] if known is not None else state[name][:, -1]
                new = side.next_input_state(prediction[name], base) if name in prediction else base
                state[name] = torch.cat([state[name][:, 1:], new[:, None]], dim=1)
        return {name: torch.stack(values, dim=1) for name, values in outputs.items()}

    @property
    def needs_known_inputs(self) -> bool:
        """Whether a rollout reads data at later steps: some input is not an output."""
        return any(
            set(side.input_variables) - set(side.output_variables)
            for name, side in self.datasets.items()
            if name in self.input_names
        )

    @torch.no_grad()
    def rollout(
        self,
        x: dict[str, torch.Tensor],
        last_input_time: torch.Tensor,
        steps: int,
        known: dict[str, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Physical inputs {name: (B, T, E, G, V)}, last input times (B,) epoch seconds, and
        (see rollout_normalised) physical `known` -> physical {name: (B, steps, E, G, V_out)}."""
        state = {n: self.datasets[n].normalizer.normalise(x[n]) for n in self.input_names}
        offsets = torch.arange(1, steps + 1, device=last_input_time.device)
        valid_times = last_input_time[:, None] + offsets[None, :] * self.timestep_seconds
        if known is not None:
            known = {n: self.datasets[n].normalizer.normalise(known[n]) for n in self.input_names}
        outputs = self.rollout_normalised(state, valid_times, known)
        return {
            name: self.datasets[name].normalizer.denormalise(
                out, self.datasets[name].output_columns
            )
            for name, out in outputs.items()
        }

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
