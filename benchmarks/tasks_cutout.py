"""The cut-out LAM against the plain and the ring LAM runs, scored on the cut-out's regional box
(the points every model predicts at full resolution and none overwrites with the truth).

Usage: python benchmarks/tasks_cutout.py results/datasets/storm.zarr \
           --start 1996-01-19T00 --end 1996-01-20T18 --lead-time 24 \
           --models storm=results/storm/model.squall@results/datasets/storm.zarr \
                    storm_lam=results/storm_lam/model.squall@results/datasets/storm.zarr \
                    storm_lam_cutout=results/storm_lam_cutout/model.squall@results/datasets/storm_cutout.zarr

Each model forecasts from its own dataset (NAME=MODEL@DATASET); the box points are matched by
coordinates to the truth dataset. Only initial times that every model forecasts and that verify
at every lead are scored, so all models (and persistence) see the same cases. Prints markdown
(area-weighted RMSE by cos(latitude), per variable and lead) and writes CSV (--out).
"""

from __future__ import annotations

import argparse
import os
from functools import reduce
from pathlib import Path

import numpy as np
import pandas as pd
from tasks_regional import markdown

from squall.data.coordinates import in_box
from squall.data.store import open_dataset
from squall.evaluation.area import latitude_weights
from squall.evaluation.metrics import rmse
from squall.evaluation.predict import predict

BOX = (30.0, 50.0, -110.0, -80.0)  # configs/datasets/storm_cutout.yaml: (south, north, west, east)


def _positions(store, latitudes: np.ndarray, longitudes: np.ndarray) -> np.ndarray:
    """Index in `store` of each (latitude, longitude)."""
    index = {
        (round(float(a), 4), round(float(o), 4)): i
        for i, (a, o) in enumerate(zip(store.latitudes, store.longitudes, strict=True))
    }
    return np.array(
        [
            index[(round(float(a), 4), round(float(o), 4))]
            for a, o in zip(latitudes, longitudes, strict=True)
        ]
    )


def box_scores(
    truth_path: str, start: str, end: str, lead_hours: int, models: dict
) -> pd.DataFrame:
    store = open_dataset(truth_path)
    forecasts = {
        name: predict(artifact, dataset, start, end, lead_hours, progress=False)
        for name, (artifact, dataset) in models.items()
    }
    inits = reduce(np.intersect1d, (f.init_time.values for f in forecasts.values()))
    leads = next(iter(forecasts.values())).lead_time.values
    valid = inits[:, None] + leads[None, :]
    dates = np.searchsorted(store.dates, valid.astype(store.dates.dtype))
    verified = np.array(
        [all(d < len(store) and int(d) not in store.missing for d in row) for row in dates]
    )
    inits, dates = inits[verified], dates[verified]
    scored, points = {}, None
    for name, f in forecasts.items():
        inside = in_box(f.latitude.values, f.longitude.values, BOX)
        positions = _positions(store, f.latitude.values[inside], f.longitude.values[inside])
        if points is not None and not np.array_equal(positions, points):
            raise ValueError(f"{name}'s box points differ from the first model's")
        points = positions
        scored[name] = f.forecast.sel(init_time=inits).values[:, :, 0][:, :, inside]
    variables = [str(v) for v in next(iter(forecasts.values())).variable.values]
    columns = [store.name_to_index[v] for v in variables]

    def fields(indices) -> np.ndarray:
        """(n, point, variable) of the box points at date indices."""
        return store.read(list(indices))[:, columns, 0][:, :, points].transpose(0, 2, 1)

    truth = fields(dates.ravel()).reshape(*dates.shape, len(points), len(columns))
    initial = fields(np.searchsorted(store.dates, inits))
    scored["persistence"] = np.repeat(initial[:, None], len(leads), axis=1)
    weights = latitude_weights(store.latitudes[points])
    rows = []
    hours = (leads / np.timedelta64(1, "h")).astype(int)
    for name, values in scored.items():
        table = rmse(values, truth, weights)
        for (lead, variable), value in np.ndenumerate(table):
            rows.append(
                {
                    "model": name,
                    "region": "box",
                    "variable": variables[variable],
                    "lead_time_hours": int(hours[lead]),
                    "rmse": float(value),
                    "inits": len(inits),
                    "points": len(points),
                }
            )
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("truth", help="dataset with the truth at full resolution")
    parser.add_argument("--start", required=True)
    parser.add_argument("--end", required=True)
    parser.add_argument("--lead-time", type=int, default=24, help="hours")
    parser.add_argument("--models", nargs="+", required=True, help="NAME=MODEL@DATASET")
    parser.add_argument("--out", default="results/cutout_scores.csv")
    args = parser.parse_args()
    models = {}
    for entry in args.models:
        name, _, rest = entry.partition("=")
        artifact, _, dataset = rest.partition("@")
        models[name] = (artifact, dataset or args.truth)
    scores = box_scores(args.truth, args.start, args.end, args.lead_time, models)
    out = Path(args.out)
    temporary = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    scores.to_csv(temporary, index=False)
    os.replace(temporary, out)
    print(f"{scores.inits.iloc[0]} initial times, {scores.points.iloc[0]} box points\n")
    print(markdown(scores, sorted(set(scores.lead_time_hours))))


if __name__ == "__main__":
    main()
