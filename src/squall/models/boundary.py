"""Limited-area models: which grid points are forced to the true state.

A regional model cannot know what flows in across its edges. During rollout the points outside
its domain (a cut-out dataset's outer points) and a ring of points at the edge of the region are
overwritten with the true state (the boundary forcing), and they add nothing to the loss.
With `target_forcing` the network also reads that true state at the time it predicts, on the
forced points only (as neural-lam and anemoi's LAMs give their networks the boundary forcing).
"""

from __future__ import annotations

from typing import Any

import torch
from torch_geometric.data import HeteroData


def ring_mask(field_shape: list[int] | tuple[int, ...], width: int) -> torch.Tensor:
    """(lat * lon,) True on the outer `width` rows and columns of a row-major (lat, lon) field."""
    if len(field_shape) != 2:
        raise ValueError(
            f"a boundary ring needs a 2-D (lat, lon) field, the dataset's field_shape is "
            f"{list(field_shape)}; use task.boundary.domain_mask for other grids"
        )
    rows, columns = (int(size) for size in field_shape)
    if 2 * width >= min(rows, columns):
        raise ValueError(
            f"a boundary ring of {width} points leaves no interior in a {rows} x {columns} field; "
            "use a smaller task.boundary.ring_width"
        )
    ring = torch.ones(rows, columns, dtype=torch.bool)
    ring[width : rows - width, width : columns - width] = False
    return ring.flatten()


def forced_points(graph: HeteroData, boundary: dict[str, Any]) -> torch.Tensor:
    """(grid,) True where the state is forced: outside `domain_mask` (a boolean data-node
    attribute of the graph, True inside) or on the ring of the regional field.

    `boundary`: {"ring_width": int, "field_shape": [lat, lon] of the regional part,
    "domain_mask": attribute name or None}. The regional points come first in a cut-out
    dataset, so the ring indexes the first lat * lon points.
    """
    num_points = graph["data"].num_nodes
    forced = torch.zeros(num_points, dtype=torch.bool)
    name = boundary.get("domain_mask")
    if name:
        if name not in graph["data"]:
            raise ValueError(
                f"task.boundary.domain_mask={name!r} is not an attribute of the graph's data "
                f"nodes; they have {sorted(k for k in graph['data'].keys() if k != 'x')}"
            )
        forced |= ~graph["data"][name].bool()
    width = int(boundary.get("ring_width", 0))
    if width:
        ring = ring_mask(boundary["field_shape"], width)
        regional = (~forced).nonzero().flatten() if name else torch.arange(num_points)
        if len(ring) != len(regional):
            raise ValueError(
                f"the field_shape {boundary['field_shape']} has {len(ring)} points but the "
                f"domain holds {len(regional)}"
            )
        forced[regional[ring]] = True
    if forced.all():
        raise ValueError("the boundary forces every grid point: the domain has no interior")
    return forced


def overwrite_forced(
    prediction: torch.Tensor, truth: torch.Tensor, forced: torch.Tensor
) -> torch.Tensor:
    """`prediction` (..., grid, V) with the forced points taken from `truth` (same shape)."""
    return torch.where(forced[:, None], truth.to(prediction.dtype), prediction)


def target_forcing_channels(state: torch.Tensor, forced: torch.Tensor) -> torch.Tensor:
    """The boundary at the time a step predicts, as network inputs: `state` (..., grid, V), the
    normalised true state there, kept on the forced points and zero inside (the interior never
    sees the truth it must predict), and a 0/1 forced-point channel: (..., grid, V + 1)."""
    boundary = torch.where(forced[:, None], state, torch.zeros_like(state))
    flag = forced.to(state.dtype)[:, None].expand(*state.shape[:-1], 1)
    return torch.cat([boundary, flag], dim=-1)
