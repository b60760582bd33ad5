"""Limited-area and stretched-grid runs against the plain run, scored where each one is meant
to be good: the whole grid, the interior (without the boundary ring) and the area of interest.

Usage: python benchmarks/tasks_regional.py results/datasets/storm.zarr \
           --start 1996-01-19T00 --end 1996-01-20T18 --lead-time 24 \
           --models storm=results/storm/model.squall storm_lam=results/storm_lam/model.squall \
                    storm_stretched=results/storm_stretched/model.squall

The limited-area model's ring is the true state by construction, so only the interior is a fair
comparison with it. `--ring-only NAME` also scores model NAME with the boundary ring forced at
inference only (same weights, no retraining): the effect of the boundary forcing alone.
`--ring-width` sets the ring left out of `interior` (and forced by --ring-only): compare LAMs of
different rings on the interior of the widest. Prints
markdown (RMSE per variable, lead and region, area-weighted by
cos(latitude), over the initial times verified at every lead) and writes CSV (--out, default
results/regional_scores.csv).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from squall.data.coordinates import in_box
from squall.data.store import open_dataset
from squall.evaluation.area import latitude_weights
from squall.evaluation.metrics import rmse
from squall.evaluation.predict import predict
from squall.models.boundary import ring_mask

RING_WIDTH = 2  # configs/training/lam.yaml: the default of --ring-width
BOX = (35.0, 47.5, -85.0, -70.0)  # configs/training/stretched.yaml


def regions(store, ring_width: int) -> dict[str, np.ndarray]:
    return {
        "all": np.ones(len(store.latitudes), dtype=bool),
        "interior": ~ring_mask(store.field_shape, ring_width).numpy(),
        "box": in_box(store.latitudes, store.longitudes, BOX),
    }


def with_boundary_ring(artifact: str, field_shape, folder: Path, ring_width: int) -> str:
    """A copy of `artifact` whose model forces the boundary ring (it adds no weights)."""
    copy = folder / f"{Path(artifact).name}.ring"
    shutil.copytree(artifact, copy)
    metadata = json.loads((copy / "metadata.json").read_text())
    boundary = {"ring_width": ring_width, "domain_mask": None, "field_shape": list(field_shape)}
    metadata["model_spec"]["boundary"] = boundary
    (copy / "metadata.json").write_text(json.dumps(metadata))
    return str(copy)


def regional_scores(
    dataset: str,
    start: str,
    end: str,
    lead_hours: int,
    models: dict[str, str],
    ring_width: int = RING_WIDTH,
) -> pd.DataFrame:
    store = open_dataset(dataset)
    weights = latitude_weights(store.latitudes)
    rows = []
    for name, artifact in models.items():
        forecasts = predict(artifact, dataset, start, end, lead_hours, progress=False)
        values = forecasts.forecast.values[:, :, 0]  # (init, lead, point, variable)
        valid = forecasts.init_time.values[:, None] + forecasts.lead_time.values[None, :]
        index = np.searchsorted(store.dates, valid.astype(store.dates.dtype))
        columns = [store.name_to_index[v] for v in forecasts.variable.values]
        truth = np.full_like(values, np.nan)
        for i, j in np.ndindex(index.shape):
            if index[i, j] < len(store) and int(index[i, j]) not in store.missing:
                truth[i, j] = store.read([int(index[i, j])])[0, columns, 0].T
        # Only initial times verified at every lead: a boundary model has no forecast from
        # those without the truth of their whole rollout, the others would be scored on more.
        whole = ~np.isnan(truth).any(axis=(1, 2, 3))
        values, truth = values[whole], truth[whole]
        leads = forecasts.lead_time.values.astype("timedelta64[h]").astype(int)
        for region, mask in regions(store, ring_width).items():
            scores = rmse(values[:, :, mask], truth[:, :, mask], weights[mask])
            for (lead, variable), value in np.ndenumerate(scores):
                rows.append(
                    {
                        "model": name,
                        "region": region,
                        "variable": str(forecasts.variable.values[variable]),
                        "lead_time_hours": int(leads[lead]),
                        "rmse": float(value),
                        "inits": values.shape[0],
                    }
                )
    return pd.DataFrame(rows)


def markdown(scores: pd.DataFrame, leads: list[int]) -> str:
    table = scores[scores.lead_time_hours.isin(leads)].pivot_table(
        index=["variable", "lead_time_hours", "region"], columns="model", values="rmse", sort=False
    )
    names = list(table.columns)
    lines = [
        "| variable | lead (h) | region | " + " | ".join(names) + " |",
        "|---|---|---|" + "---|" * len(names),
    ]
    for (variable, lead, region), row in table.iterrows():
        cells = " | ".join(f"{row[name]:.3g}" for name in names)
        lines.append(f"| {variable} | {lead} | {region} | {cells} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("--start", required=True)
    parser.add_argument("--end", required=True)
    parser.add_argument("--lead-time", type=int, default=24, help="hours")
    parser.add_argument("--models", nargs="+", required=True, help="name=path/to/model.squall")
    parser.add_argument("--ring-only", nargs="*", default=[], help="model names (see above)")
    parser.add_argument("--ring-width", type=int, default=RING_WIDTH, help="grid points")
    parser.add_argument("--out", default="results/regional_scores.csv")
    args = parser.parse_args()
    models = dict(entry.split("=", 1) for entry in args.models)
    with tempfile.TemporaryDirectory() as folder:
        for name in args.ring_only:
            shape = open_dataset(args.dataset).field_shape
            ring = with_boundary_ring(models[name], shape, Path(folder), args.ring_width)
            models[f"{name}+ring"] = ring
        scores = regional_scores(
            args.dataset, args.start, args.end, args.lead_time, models, args.ring_width
        )
    out = Path(args.out)
    temporary = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    scores.to_csv(temporary, index=False)
    os.replace(temporary, out)
    print(f"{scores.inits.iloc[0]} initial times, {args.start}..{args.end}\n")
    print(markdown(scores, [6, args.lead_time]))


if __name__ == "__main__":
    main()
