"""Sample throughput of squall's data loader against raw zarr chunk reads, in one run.

A SYNTHETIC store (random values, labelled synthetic in its attributes) of O96 size: 40,320
points, 100 variables, 6-hourly, one date per chunk. A sample is 2 inputs + 1 target (three
consecutive dates). For each number of processes P in (1, 2, 4):
  raw:    P processes, each reading its share of the anchors with plain zarr (`data[t-1:t+2]`);
  squall: a DataLoader over ForecastSamples with P workers (batch size 1, shuffled sampler);
          batches arrive as (batch, time, ensemble, grid, variable) views in the store's memory
          order (the datamodule makes them contiguous on the device, after transfer: not timed).
Each is timed over the same number of samples, repeated, and the medians compared. A separate
pass measures the peak Python/numpy heap of a worker (tracemalloc) while it builds samples.

    .venv/bin/python benchmarks/data/throughput.py [--dates 240] [--samples 120] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch
import zarr
from torch.utils.data import DataLoader

from squall.data.datamodule import SPARE_BATCH_BUFFERS, ForecastSamples, collate_batches
from squall.data.sampling import EpochSampler
from squall.data.store_write import StoreBuilder

POINTS, VARIABLES = 40_320, 100  # O96: 40,320 grid points


def make_store(path: Path, dates: int) -> Path:
    """Write the synthetic store date by date (never all in memory)."""
    if path.exists():
        return path
    times = np.datetime64("2000-01-01", "s") + np.arange(dates) * np.timedelta64(6, "h")
    builder = StoreBuilder(
        path,
        dates=times,
        latitudes=np.linspace(-90, 90, POINTS),
        longitudes=np.linspace(0, 360, POINTS, endpoint=False),
        variables=[f"var_{j:03d}" for j in range(VARIABLES)],
        ensembles=1,
        frequency="6h",
    )
    rng = np.random.default_rng(0)
    for i in range(dates):
        builder.write(i, rng.standard_normal((VARIABLES, 1, POINTS), dtype=np.float32))
    return builder.finish(
        field_shape=(POINTS,),
        extra_attrs={"description": "SYNTHETIC random values for throughput benchmarks only"},
    )


def _raw_worker(path: str, anchors: list[int], start, done) -> None:
    data = zarr.open_group(path, mode="r")["data"]
    start.wait()
    for t in anchors:
        np.asarray(data[t - 1 : t + 2])  # the three chunks of one sample
    done.put(len(anchors))


def raw_rate(path: Path, anchors: np.ndarray, processes: int) -> float:
    ctx = multiprocessing.get_context("fork")
    start, done = ctx.Barrier(processes + 1), ctx.Queue()
    workers = [
        ctx.Process(
            target=_raw_worker, args=(str(path), anchors[p::processes].tolist(), start, done)
        )
        for p in range(processes)
    ]
    for worker in workers:
        worker.start()
    start.wait()
    began = time.perf_counter()
    total = sum(done.get() for _ in workers)
    elapsed = time.perf_counter() - began
    for worker in workers:
        worker.join()
    return total / elapsed


def loader_rate(samples: ForecastSamples, count: int, workers: int, epoch: int) -> float:
    sampler = EpochSampler(len(samples), seed=0, shuffle=True)
    sampler.set_epoch(epoch)
    samples.batch_buffers = 2 + SPARE_BATCH_BUFFERS  # as ResumableDataLoader sets it
    loader = DataLoader(samples, batch_size=1, sampler=sampler, num_workers=workers,
                        prefetch_factor=2, multiprocessing_context="fork",
                        collate_fn=collate_batches)  # fmt: skip
    iterator = iter(loader)
    next(iterator)  # workers started and the first sample made: not timed
    began = time.perf_counter()
    for _ in range(count):
        next(iterator)
    elapsed = time.perf_counter() - began
    del iterator
    return count / elapsed


def worker_peak_heap(samples: ForecastSamples, count: int) -> int:
    """Peak traced heap (numpy and Python; the batch tensor itself is torch's, not traced) of a
    child process building `count` batches of one sample the way a loader worker does."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()

    def measure():
        tracemalloc.start()
        for i in range(count):
            batch = samples.__getitems__([i])
            del batch
        queue.put(tracemalloc.get_traced_memory()[1])

    process = ctx.Process(target=measure)
    process.start()
    peak = queue.get()
    process.join()
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dates", type=int, default=240)
    parser.add_argument("--samples", type=int, default=120, help="samples per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument(
        "--store", type=Path, default=Path(tempfile.gettempdir()) / "squall_o96_synthetic.zarr"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(1)

    began = time.perf_counter()
    path = make_store(args.store, args.dates)
    print(f"synthetic store {path}: {args.dates} dates x {VARIABLES} variables x {POINTS} points "
          f"({args.dates * VARIABLES * POINTS * 4 / 1e9:.1f} GB float32), ready in "
          f"{time.perf_counter() - began:.0f} s", flush=True)  # fmt: skip
    variables = [f"var_{j:03d}" for j in range(VARIABLES)]
    samples = ForecastSamples(str(path), "2000", "2001", variables, 2, 1, 1)
    rng = np.random.default_rng(1)
    results = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "rows": []}
    raw_rate(path, samples.indices + 0, 2)  # warm the page cache: both sides read it warm
    for processes in args.processes:
        raw, ours = [], []
        for repeat in range(args.repeats):  # interleaved so drifts hit both alike
            anchors = rng.choice(samples.indices, args.samples, replace=False)
            raw.append(raw_rate(path, anchors, processes))
            ours.append(loader_rate(samples, args.samples, processes, epoch=repeat))
        row = {
            "processes": processes,
            "raw_samples_per_s": statistics.median(raw),
            "squall_samples_per_s": statistics.median(ours),
            "raw_all": raw,
            "squall_all": ours,
        }
        row["ratio"] = row["squall_samples_per_s"] / row["raw_samples_per_s"]
        results["rows"].append(row)
        print(f"P={processes}: raw {row['raw_samples_per_s']:.1f}/s, squall "
              f"{row['squall_samples_per_s']:.1f}/s, ratio {row['ratio']:.2f}  "
              f"(raw {[round(r, 1) for r in raw]}, squall {[round(r, 1) for r in ours]})",
              flush=True)  # fmt: skip
    peak, sample_bytes = worker_peak_heap(samples, 10), 3 * VARIABLES * POINTS * 4
    results["worker_peak_heap_bytes"], results["sample_bytes"] = peak, sample_bytes
    results["shared_batch_buffers_per_worker"] = samples.batch_buffers
    print(
        f"sample: {sample_bytes / 1e6:.1f} MB; worker private heap peak while building samples: "
        f"{peak / 1e6:.1f} MB = {peak / sample_bytes:.2f} samples; plus "
        f"{samples.batch_buffers} shared-memory batch buffers per worker (the loader's queue)"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    sys.exit(main())
