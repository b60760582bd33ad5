"""Data nodes: the grid of a dataset, of an .npz file, or of a named global grid."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from squall.data.coordinates import coordinates_hash
from squall.graphs.grids import healpix_grid, reduced_gaussian_grid


@dataclass(frozen=True)
class DataNodes:
    """Grid coordinates in degrees, optional boolean node masks (e.g. `cutout_mask`, True for
    the regional part of a cut-out grid) and the coordinates hash the graph file will carry."""

    latitudes: np.ndarray
    longitudes: np.ndarray
    masks: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        lat = np.asarray(self.latitudes, dtype=np.float64)
        lon = np.asarray(self.longitudes, dtype=np.float64)
        if lat.ndim != 1 or lat.shape != lon.shape or len(lat) < 2:
            raise ValueError(
                "latitudes and longitudes must be 1-D arrays of equal length with at least two "
                f"grid points, got shapes {lat.shape} and {lon.shape}; flatten 2-D grids first"
            )
        if not (np.isfinite(lat).all() and np.isfinite(lon).all()):
            raise ValueError("the grid coordinates contain NaN or inf; fix the dataset coordinates")
        if np.abs(lat).max() > 90.0:
            raise ValueError(
                f"latitudes must lie in [-90, 90] degrees, found {np.abs(lat).max():.3f}; are "
                "latitudes and longitudes swapped, or given in radians?"
            )
        for name, mask in self.masks.items():
            if np.shape(mask) != lat.shape or np.asarray(mask).dtype != bool:
                raise ValueError(
                    f"data node mask {name!r} must be a boolean array of {len(lat)} entries, got "
                    f"{np.asarray(mask).dtype} of shape {np.shape(mask)}"
                )
        object.__setattr__(self, "latitudes", lat)
        object.__setattr__(self, "longitudes", lon)

    @property
    def latlon_rad(self) -> np.ndarray:
        return np.deg2rad(np.stack([self.latitudes, self.longitudes], axis=1))

    @property
    def coordinates_hash(self) -> str:
        return coordinates_hash(self.latitudes, self.longitudes)


def _from_npz(path: Path) -> DataNodes:
    with np.load(path) as npz:
        missing = {"latitudes", "longitudes"} - set(npz.files)
        if missing:
            raise ValueError(
                f"{path} lacks {sorted(missing)}; an .npz of data nodes holds 1-D arrays "
                "'latitudes' and 'longitudes' in degrees (and optional boolean masks)"
            )
        masks = {name: npz[name] for name in npz.files if npz[name].dtype == bool}
        return DataNodes(npz["latitudes"], npz["longitudes"], masks)


def _from_dataset(path: Path) -> DataNodes:
    from squall.data.store import open_dataset

    dataset = open_dataset(path)
    masks = {}
    # anemoi's cutout datasets record the sizes of their grids, regional grid first.
    grids = dataset.metadata.get("grids") if isinstance(dataset.metadata, dict) else None
    if grids and len(grids) > 1:
        masks["cutout_mask"] = np.arange(sum(grids)) < grids[0]
    return DataNodes(dataset.latitudes, dataset.longitudes, masks)


def load_data_nodes(source: str | Path) -> DataNodes:
    """Data nodes from a dataset (.zarr), an .npz file, or a grid name (o96, n320, healpix5)."""
    path = Path(source)
    if path.suffix == ".npz" and path.is_file():
        return _from_npz(path)
    if path.exists():
        return _from_dataset(path)
    name = str(source).lower()
    if re.fullmatch(r"[on]\d+", name):
        return DataNodes(*reduced_gaussian_grid(name))
    if match := re.fullmatch(r"healpix(\d+)", name):
        return DataNodes(*healpix_grid(int(match.group(1))))
    raise FileNotFoundError(
        f"no dataset or .npz file at {source}; pass a dataset (.zarr), an .npz with 'latitudes' "
        "and 'longitudes', or a grid name such as o96, n320 or healpix5"
    )
