"""The forecast model as users see it: physical units in, physical units out.

Wraps the network with normalisation, variable roles, computed forcings and the residual
connection, so that training, export and evaluation all run the same code on the device.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch_geometric.data import HeteroData

from squall.models.boundary import forced_points, overwrite_forced, target_forcing_channels
from squall.models.computed_forcings import computed_forcings
from squall.models.encoder_processor_decoder import EncoderProcessorDecoder
from squall.models.preprocessing import Preprocessor

BOUNDING_KINDS = ("relu",)
TASKS = ("forecaster", "interpolator", "autoencoder")


def variable_roles(spec: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Input variables (prognostic + forcing) and output variables (prognostic + diagnostic),
    both in the order of spec['variables']."""
    forcing, diagnostic = set(spec["forcing"]), set(spec["diagnostic"])
    inputs = [name for name in spec["variables"] if name not in diagnostic]
    outputs = [name for name in spec["variables"] if name not in forcing]
    return inputs, outputs


def register_variable_roles(
    module: nn.Module, spec: dict[str, Any], statistics: dict[str, list], normalizer: Preprocessor
) -> None:
    """Gives `module` (a single-dataset model, or one dataset's side of a multi-dataset model)
    its input/output variables and the column buffers and tendency scale that use them."""
    variables = spec["variables"]
    module.input_variables, module.output_variables = variable_roles(spec)
    prognostic = [v for v in module.output_variables if v in module.input_variables]
    index = {name: i for i, name in enumerate(variables)}

    def columns(names: list[str]) -> torch.Tensor:
        return torch.tensor([index[name] for name in names], dtype=torch.long)

    module.register_buffer("input_columns", columns(module.input_variables), persistent=False)
    module.register_buffer("output_columns", columns(module.output_variables), persistent=False)
    module.register_buffer("prognostic_columns", columns(prognostic), persistent=False)
    # Where each prognostic variable sits among the outputs.
    module.register_buffer(
        "prognostic_in_output",
        torch.tensor([module.output_variables.index(v) for v in prognostic], dtype=torch.long),
        persistent=False,
    )
    # Prognostic outputs are a tendency scaled by its own spread: a 6 h change is a small
    # fraction of a field's stdev, and the network should not have to learn that scale.
    # Remapped variables have no tendency statistics in remapped space: scale 1.
    ratio = torch.as_tensor(statistics["tendency_stdev"], dtype=torch.float32)
    ratio = ratio / normalizer.scale
    remapped = torch.tensor([name in normalizer.remaps for name in variables])
    ratio = torch.where(remapped, 1.0, ratio)
    module.register_buffer("tendency_scale", ratio[module.prognostic_columns].clone())


class ForecastModel(nn.Module):
    """x (batch, time, ensemble, grid, variable) -> next state (batch, ensemble, grid, output).

    `spec` keys: variables (order of the last axis of x), forcing, diagnostic, computed_forcings,
    input_steps, timestep_seconds, network (EncoderProcessorDecoder arguments without channels),
    and optionally preprocessing (Preprocessor config: normaliser, remapper, imputer),
    bounding ([{"kind": "relu", "variables": [...]}]: outputs kept >= 0 in physical units),
    task (TASKS: what the output adds to: the last state, the linear interpolation of the two
    inputs at the fraction of the way between them, or nothing) and boundary (a limited-area
    model's forced points, see squall.models.boundary).
    `statistics` keys: mean, stdev, tendency_stdev (and minimum, maximum where a normaliser or
    imputer needs them), one value per variable of spec['variables'].
    """

    def __init__(self, graph: HeteroData, spec: dict[str, Any], statistics: dict[str, list]):
        super().__init__()
        self.spec = spec
        self.task = spec.get("task", "forecaster")
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; choose one of {TASKS}")
        variables = spec["variables"]
        self.normalizer = Preprocessor(variables, statistics, spec.get("preprocessing"))
        register_variable_roles(self, spec, statistics, self.normalizer)
        index = {name: i for i, name in enumerate(variables)}
        self._register_bounds(spec.get("bounding", []), index)

        coordinates = graph["data"].x.float()
        self.register_buffer("latitudes", coordinates[:, 0].clone(), persistent=False)
        self.register_buffer("longitudes", coordinates[:, 1].clone(), persistent=False)
        # The interpolator is told how far between its inputs the target lies: one more channel.
        num_forcings = len(spec["computed_forcings"]) + (self.task == "interpolator")
        boundary = spec.get("boundary")
        self.register_buffer(
            "forced", forced_points(graph, boundary) if boundary else None, persistent=False
        )
        # boundary.target_forcing: the prognostic variables' true state at the predicted time
        # on the forced points, and a 0/1 forced-point channel (absent in older specs: off).
        self.target_forcing = bool(boundary and boundary.get("target_forcing", False))
        if self.target_forcing:
            num_forcings += len(self.prognostic_columns) + 1
        self.network = EncoderProcessorDecoder(
            graph,
            in_channels=spec["input_steps"] * len(self.input_variables) + num_forcings,
            out_channels=len(self.output_variables),
            **spec["network"],
        )
        # Start as persistence: the last layer outputs zero tendencies until it learns.
        last_linear = [m for m in self.network.output_mlp.modules() if isinstance(m, nn.Linear)][-1]
        nn.init.zeros_(last_linear.weight)
        nn.init.zeros_(last_linear.bias)

    def _register_bounds(self, bounding: list[dict[str, Any]], index: dict[str, int]) -> None:
        """ReLU bounds: physical 0 expressed in normalised space, per bounded output."""
        positions, lower = [], []
        for entry in bounding:
            if entry.get("kind") not in BOUNDING_KINDS:
                raise ValueError(
                    f"unknown bounding {entry.get('kind')!r}; choose one of {BOUNDING_KINDS}."
                )
            for name in entry.get("variables", []):
                if name not in self.output_variables:
                    raise ValueError(
                        f"bounding names {name!r}, which is not an output variable "
                        f"({self.output_variables})."
                    )
                positions.append(self.output_variables.index(name))
                lower.append(self.normalizer.normalised_value(0.0, index[name]))
        self.register_buffer("bounded_outputs", torch.tensor(positions, dtype=torch.long), False)
        self.register_buffer("lower_bounds", torch.tensor(lower, dtype=torch.float32), False)

    @property
    def input_steps(self) -> int:
        return self.spec["input_steps"]

    @property
    def timestep_seconds(self) -> int:
        return self.spec["timestep_seconds"]

    def forward_normalised(
        self,
        x: torch.Tensor,
        valid_time: torch.Tensor,
        fraction: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        boundary_state: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Normalised x (B, T, E, G, V), valid times (B,) -> normalised output (B, E, G, V_out).
        The interpolator also takes `fraction` (B,): how far the target lies from the first
        input to the second (0..1). The ensemble variant takes `noise` (B x E, noise channels),
        or draws it. A limited-area model with target forcing takes `boundary_state` (B, E, G,
        V): the normalised true state at the valid time, read on its forced points only."""
        batch, members, grid = x.shape[0], x.shape[2], x.shape[3]
        features = self.network_inputs(x, valid_time, fraction, boundary_state)
        outputs = len(self.output_variables)
        out = self.network(features, noise=noise).reshape(batch, members, grid, outputs)
        if self.task == "autoencoder":  # a reconstruction, not a change of state
            return self._bounded(out)
        base = x[:, -1][..., self.prognostic_columns]
        if self.task == "interpolator":  # the network learns the departure from linear
            weight = fraction.to(x.dtype)[:, None, None, None]
            base = torch.lerp(x[:, 0][..., self.prognostic_columns], base, weight)
        prognostic = base + out[..., self.prognostic_in_output] * self.tendency_scale
        out = out.index_copy(-1, self.prognostic_in_output, prognostic.to(out.dtype))
        return self._bounded(out)

    def network_inputs(
        self,
        x: torch.Tensor,
        valid_time: torch.Tensor,
        fraction: torch.Tensor | None = None,
        boundary_state: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The network's input features (B x E, G, channels): the input states' variables
        over time, the computed forcings at the valid time and, with target forcing, the
        boundary at the valid time (see forward_normalised)."""
        batch, steps, members, grid, _ = x.shape
        if steps != self.input_steps:
            raise ValueError(f"the model takes {self.input_steps} input steps, got {steps}")
        inputs = (
            x[..., self.input_columns]
            .permute(0, 2, 3, 1, 4)
            .reshape(batch, members, grid, steps * len(self.input_variables))
        )
        points = self.network.grid_points  # all, or this rank's shard under model sharding
        forcings = computed_forcings(
            self.spec["computed_forcings"],
            valid_time,
            self.latitudes[points],
            self.longitudes[points],
        ).to(inputs.dtype)
        if self.task == "interpolator":
            if fraction is None:
                raise ValueError("the interpolator needs the fraction of the way to its target")
            weight = fraction.to(forcings.dtype)[:, None, None].expand(batch, grid, 1)
            forcings = torch.cat([forcings, weight], dim=-1)
        forcings = forcings[:, None].expand(batch, members, grid, forcings.shape[-1])
        features = [inputs, forcings]
        if self.target_forcing:
            if boundary_state is None:
                raise ValueError(
                    "the limited-area model reads its boundary at the predicted time "
                    "(task.boundary.target_forcing): pass the true state as boundary_state"
                )
            state = boundary_state[..., self.prognostic_columns].to(inputs.dtype)
            features.append(target_forcing_channels(state, self.forced[points]))
        return torch.cat(features, dim=-1).reshape(batch * members, grid, -1)

    def _bounded(self, out: torch.Tensor) -> torch.Tensor:
        if self.bounded_outputs.numel():
            # ReLU in physical units: the gradient vanishes below the bound, as for a ReLU.
            bounded = torch.maximum(out[..., self.bounded_outputs], self.lower_bounds.to(out.dtype))
            out = out.index_copy(-1, self.bounded_outputs, bounded)
        return out

    def next_input_state(self, prediction: torch.Tensor, known_state: torch.Tensor) -> torch.Tensor:
        """The state fed back at the next step: predicted prognostic variables, and the known
        values (forcings read from data) for the rest. Shapes (B, E, G, V_out) and (B, E, G, V)."""
        prognostic = prediction[..., self.prognostic_in_output].to(known_state.dtype)
        return known_state.index_copy(-1, self.prognostic_columns, prognostic)

    @torch.no_grad()
    def rollout(
        self,
        x: torch.Tensor,
        last_input_time: torch.Tensor,
        steps: int,
        known_future: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Autoregressive forecast in physical units.

        x (B, T, E, G, V) physical, last_input_time (B,) epoch seconds; known_future (B, steps,
        E, G, V) supplies forcing variables for each new time (may be None without forcings).
        Returns (B, steps, E, G, V_out).
        """
        if (self.spec["forcing"] or self.forced is not None) and known_future is None:
            raise ValueError(
                f"the model reads forcing variables {self.spec['forcing']} (or a limited-area "
                "boundary) at every step: pass their future values as known_future (batch, "
                "steps, ensemble, grid, variable)"
            )
        state = self.normalizer.normalise(x)
        missing = self._missing_outputs(x[:, -1])
        outputs = []
        for step in range(steps):
            valid_time = last_input_time + (step + 1) * self.timestep_seconds
            known = (
                self.normalizer.normalise(known_future[:, step])
                if known_future is not None
                else torch.zeros_like(state[:, -1])
            )
            boundary = {"boundary_state": known} if self.target_forcing else {}
            prediction = self.forward_normalised(state, valid_time, **boundary)
            prediction = self.apply_boundary(prediction, known)
            physical = self.normalizer.denormalise(prediction, self.output_columns)
            outputs.append(physical.masked_fill(missing, float("nan")))
            new_state = self.next_input_state(prediction, known)
            state = torch.cat([state[:, 1:], new_state[:, None]], dim=1)
        return torch.stack(outputs, dim=1)

    def apply_boundary(self, prediction: torch.Tensor, known_state: torch.Tensor) -> torch.Tensor:
        """A limited-area model's output (B, E, G, V_out) with its forced points taken from the
        true state (B, E, G, V) (both normalised); other models' output unchanged. Under model
        sharding G is this rank's grid shard, and so is the mask."""
        if self.forced is None:
            return prediction
        forced = self.forced[self.network.grid_points]
        return overwrite_forced(prediction, known_state[..., self.output_columns], forced)

    def _missing_outputs(self, last_state: torch.Tensor) -> torch.Tensor:
        """(B, E, G, V_out) True where an output variable was NaN in the last input state: those
        points were imputed, and the forecast gives them back as NaN."""
        missing = torch.zeros(
            (*last_state.shape[:-1], len(self.output_variables)),
            dtype=torch.bool,
            device=last_state.device,
        )
        if self.prognostic_columns.numel():
            prognostic_missing = torch.isnan(last_state[..., self.prognostic_columns])
            missing[..., self.prognostic_in_output] = prognostic_missing
        return missing
