"""Pre-flight: everything checkable before a GPU hour is spent; and the resolved config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from squall.config.compose import load_config
from squall.config.lineage import input_lineage
from squall.config.resolved import write_resolved
from squall.config.schema import SquallConfig
from squall.data.dates import date_bounds, frequency_to_timedelta
from squall.data.sampling import valid_sample_indices
from squall.data.statistics import check_statistics_period, load_statistics
from squall.data.store import open_dataset
from squall.graphs.io import load_graph
from squall.models.computed_forcings import NAMES as COMPUTED_FORCINGS


def model_variables(config: SquallConfig, dataset_variables: list[str]) -> list[str]:
    """Dataset variables the model reads, in dataset order; unknown names are an error."""
    data = config.data
    for key, names in (
        ("forcing", data.forcing),
        ("diagnostic", data.diagnostic),
        ("drop", data.drop),
    ):
        unknown = [name for name in names if name not in dataset_variables]
        if unknown:
            raise ValueError(
                f"data.{key} names {unknown}, which the dataset does not have; its variables "
                f"are {dataset_variables}"
            )
    unknown = [name for name in data.computed_forcings if name not in COMPUTED_FORCINGS]
    if unknown:
        raise ValueError(
            f"data.computed_forcings names {unknown}; squall computes {list(COMPUTED_FORCINGS)}"
        )
    return [name for name in dataset_variables if name not in data.drop]


def model_statistics(
    statistics: dict[str, Any], variables: list[str], timestep: str
) -> dict[str, list[float]]:
    """Mean, stdev, minimum, maximum (when the file has them) and `timestep` tendency stdev of
    `variables`, from a statistics file."""
    index = {name: i for i, name in enumerate(statistics["variables"])}
    missing = [name for name in variables if name not in index]
    if missing:
        raise ValueError(
            f"the statistics file has no entry for {missing}; recompute it for this dataset "
            "(`squall dataset statistics`)"
        )
    tendencies = statistics.get("tendencies", {})
    if timestep not in tendencies:
        raise ValueError(
            f"the statistics file has tendency statistics for {sorted(tendencies)} but the model "
            f"step is {timestep}; recompute with `squall dataset statistics --tendency {timestep}`"
        )
    pick = [index[name] for name in variables]
    return {
        "mean": [float(statistics["mean"][i]) for i in pick],
        "stdev": [float(statistics["stdev"][i]) for i in pick],
        "tendency_stdev": [float(tendencies[timestep]["stdev"][i]) for i in pick],
    } | {  # min-max / max normalisers and the minimum / maximum imputers need these
        key: [float(statistics[key][i]) for i in pick]
        for key in ("minimum", "maximum")
        if key in statistics
    }


def check_enough_dates(config: SquallConfig, dataset_path: str, frequency) -> None:
    """Each window must hold at least one complete sample at its longest rollout."""
    step = int(frequency_to_timedelta(config.data.timestep) / frequency)
    rollouts = {
        "training": config.task.rollout.maximum,
        "validation": config.task.validation_rollout,
    }
    for stage, rollout in rollouts.items():
        window = getattr(config.dataloader, stage)
        dates = open_dataset(dataset_path, start=window.start, end=window.end)
        anchors = valid_sample_indices(
            len(dates), set(dates.missing), config.task.input_steps, rollout, step
        )
        if len(anchors) == 0:
            needed = (config.task.input_steps - 1 + rollout) * step + 1
            raise ValueError(
                f"dataloader.{stage} ({window.start}..{window.end}) holds {len(dates)} dates "
                f"({len(dates.missing)} missing) but one sample with {config.task.input_steps} "
                f"inputs and a rollout of {rollout} spans {needed} present dates: widen the "
                "window or shorten the rollout"
            )


def check_statistics_inside_training(statistics: dict[str, Any], training) -> None:
    """The normalisation must be learnt from the training dates only."""
    period = statistics["period"]
    first, _ = date_bounds(training.start)
    _, stop = date_bounds(training.end)
    stats_first, _ = date_bounds(period["start"])
    _, stats_stop = date_bounds(period["end"])
    if stats_first < first or stats_stop > stop:
        raise ValueError(
            f"the statistics cover {period['start']}..{period['end']}, outside the training "
            f"split {training.start}..{training.end}: recompute them over the training split "
            "(`squall dataset statistics --start ... --end ...`)"
        )


def preflight(config: SquallConfig) -> dict[str, Any]:
    """Check data, graph, statistics and splits against each other; return the resolved config
    (plain dict) with lineage hashes of the inputs."""
    inputs = config.system.input
    if inputs.datasets:  # several datasets at once, or a downscaler
        from squall.training.multi_dataset_inputs import multi_dataset_preflight

        return multi_dataset_preflight(config)
    dataset = open_dataset(inputs.dataset)
    frequency = frequency_to_timedelta(config.data.frequency)
    if dataset.frequency != frequency:
        raise ValueError(
            f"data.frequency={config.data.frequency} but the dataset {inputs.dataset} has a step "
            f"of {dataset.frequency}; set data.frequency to match"
        )
    model_variables(config, dataset.variables)
    load_graph(inputs.graph, expected_coordinates_hash=dataset.coordinates_hash)

    check_enough_dates(config, inputs.dataset, dataset.frequency)
    statistics = load_statistics(inputs.statistics)
    windows = {"validation": config.dataloader.validation}
    if config.dataloader.test.start and config.dataloader.test.end:
        windows["test"] = config.dataloader.test
    check_statistics_period(statistics, {k: (w.start, w.end) for k, w in windows.items()})
    check_statistics_inside_training(statistics, config.dataloader.training)
    model_statistics(statistics, model_variables(config, dataset.variables), config.data.timestep)

    resolved = config.model_dump(mode="json")
    resolved["lineage"] = input_lineage(inputs.dataset, inputs.graph, inputs.statistics)
    return resolved


def validate_to_file(
    config_name: str,
    overrides: list[str],
    config_dir: str | Path,
    out_path: str | Path,
    dry_run: bool = False,
) -> dict[str, Any]:
    """`squall config validate`: compose, check the schema, run the pre-flight checks, and with
    `dry_run` one forward and backward pass (report in <out>.preflight.json); write the YAML."""
    config = load_config(config_name, overrides, config_dir)
    resolved = preflight(config)
    if dry_run:
        from squall.training.dry_run import describe
        from squall.training.dry_run import dry_run as run_once

        report = run_once(config)
        report_path = Path(out_path).with_suffix(".preflight.json")
        report_path.parent.mkdir(parents=True, exist_ok=True)
        temporary = report_path.with_name(f".{report_path.name}.tmp")
        temporary.write_text(json.dumps(report, indent=2))
        temporary.replace(report_path)
        print(describe(report))
    write_resolved(resolved, out_path)
    return resolved
