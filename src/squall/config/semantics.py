"""Checks beyond types: settings that are each valid but do not fit together."""

from __future__ import annotations

from squall.config.problems import Problem
from squall.config.schema import SquallConfig
from squall.data.dates import date_bounds


def split_problems(config: SquallConfig) -> list[Problem]:
    """Training, validation and test windows: each ordered, in that order, not overlapping."""
    loader = config.dataloader
    windows = [("training", loader.training), ("validation", loader.validation)]
    if loader.test.start and loader.test.end:
        windows.append(("test", loader.test))
    problems, bounds = [], []
    for name, window in windows:
        try:
            first, _ = date_bounds(window.start)
            _, stop = date_bounds(window.end)
        except ValueError as error:
            problems.append(Problem(f"dataloader.{name}", str(error)))
            continue
        if stop <= first:
            problems.append(
                Problem(
                    f"dataloader.{name}.end",
                    f"{window.end} is before the start {window.start}: swap them",
                )
            )
        bounds.append((name, window, first, stop))
    for (name, window, _, stop), (later, other, first, _) in zip(bounds, bounds[1:], strict=False):
        if first < stop:
            problems.append(
                Problem(
                    f"dataloader.{later}.start",
                    f"the {later} period {other.start}..{other.end} overlaps or precedes the "
                    f"{name} period {window.start}..{window.end}: {later} must come after "
                    f"{name}, with no shared dates (samples would leak between them)",
                )
            )
    return problems


def scaler_problems(config: SquallConfig) -> list[Problem]:
    """Every scaler a loss names must be defined in training.scalers."""
    defined = set(config.training.scalers)
    problems = []

    def check(loss, key: str) -> None:
        for index, part in enumerate(loss.losses):
            check(part, f"{key}.losses[{index}]")
        for entry in loss.scalers:
            name = entry.removeprefix("!")
            if name != "*" and name not in defined:
                problems.append(
                    Problem(
                        f"{key}.scalers",
                        (
                            f"names the scaler {name!r}, which training.scalers does not define "
                            f"(defined: {sorted(defined) or 'none'})"
                        ),
                    )
                )

    check(config.training.loss, "training.loss")
    return problems


def semantic_problems(config: SquallConfig) -> list[Problem]:
    return split_problems(config) + scaler_problems(config)
