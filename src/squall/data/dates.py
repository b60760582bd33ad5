"""Dates, frequencies and date windows, in the anemoi conventions (ISO strings, "6h")."""

from __future__ import annotations

import datetime
import re

import numpy as np

SECOND = np.timedelta64(1, "s")
_FREQUENCY = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

DateLike = str | int | datetime.date | datetime.datetime | np.datetime64


def frequency_to_timedelta(frequency: str | int | datetime.timedelta) -> datetime.timedelta:
    """ "6h" -> timedelta(hours=6); a bare int means hours (as in old anemoi stores)."""
    if isinstance(frequency, datetime.timedelta):
        return frequency
    if isinstance(frequency, int | np.integer):
        return datetime.timedelta(hours=int(frequency))
    match = _FREQUENCY.match(str(frequency))
    if match is None:
        raise ValueError(
            f"cannot read frequency {frequency!r}: write a number and a unit, like '6h', '1d', "
            "'30m' or '3600s'"
        )
    count, unit = match.groups()
    return datetime.timedelta(seconds=int(count) * _UNIT_SECONDS[unit])


def frequency_to_string(frequency: str | int | datetime.timedelta) -> str:
    """timedelta(hours=6) -> "6h" (the largest unit that divides it), as anemoi writes it."""
    seconds = int(frequency_to_timedelta(frequency).total_seconds())
    if seconds <= 0:
        raise ValueError(f"frequency must be positive, got {frequency!r}")
    for unit in ("d", "h", "m"):
        if seconds % _UNIT_SECONDS[unit] == 0:
            return f"{seconds // _UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"


def date_bounds(value: DateLike) -> tuple[np.datetime64, np.datetime64]:
    """The instants a date selector covers, as [first, stop) in datetime64[s].

    "1996" covers the year, "1996-01" the month, "1996-01-17" the day, "1996-01-17T06" the hour,
    and a full ISO datetime (or a datetime object) that one instant. So an inclusive `end` of
    "1996-01-17" keeps 1996-01-17T18 in a 6-hourly dataset.
    """
    if isinstance(value, datetime.datetime):
        first = np.datetime64(value.replace(tzinfo=None), "s")
        return first, first + SECOND
    if isinstance(value, datetime.date):
        day = np.datetime64(value, "D")
        return day.astype("datetime64[s]"), (day + 1).astype("datetime64[s]")
    if isinstance(value, np.datetime64):
        return value.astype("datetime64[s]"), (value + 1).astype("datetime64[s]")
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        value = f"{int(value):04d}"
    if not isinstance(value, str):
        raise TypeError(f"cannot read {value!r} as a date: give an ISO string like '1996-01-17'")
    text = value.strip().replace(" ", "T").rstrip("Z")
    try:
        # numpy keeps the precision the string was written with: "1996" is a year, and
        # adding one unit gives the exclusive end of exactly the period the user meant.
        parsed = np.datetime64(text)
    except ValueError as error:
        raise ValueError(
            f"cannot read date {value!r}: use ISO 8601, e.g. '1996', '1996-01', '1996-01-17', "
            "'1996-01-17T06' or '1996-01-17T06:00:00'"
        ) from error
    return parsed.astype("datetime64[s]"), (parsed + 1).astype("datetime64[s]")


def window_indices(
    dates: np.ndarray, start: DateLike | None = None, end: DateLike | None = None
) -> tuple[int, int]:
    """Indices [first, stop) of the sorted `dates` inside the inclusive window start..end."""
    dates = np.asarray(dates).astype("datetime64[s]")
    first = 0 if start is None else int(np.searchsorted(dates, date_bounds(start)[0], "left"))
    stop = len(dates) if end is None else int(np.searchsorted(dates, date_bounds(end)[1], "left"))
    if stop <= first:
        available = f"{iso(dates[0])} to {iso(dates[-1])}" if len(dates) else "no dates"
        raise ValueError(
            f"no dates between start={start!r} and end={end!r}: the dataset has {available}. "
            "Choose a window inside that range."
        )
    return first, stop


def iso(value: np.datetime64 | datetime.datetime) -> str:
    """ISO 8601 string with seconds, as anemoi writes dates in attributes: 1996-01-05T00:00:00."""
    return str(np.datetime64(value, "s"))


def check_regular(dates: np.ndarray, frequency: datetime.timedelta, where: str) -> None:
    """Refuse a time axis that is unsorted, has gaps or steps other than `frequency`."""
    dates = np.asarray(dates).astype("datetime64[s]")
    if len(dates) < 2:
        return
    steps = np.diff(dates)
    expected = np.timedelta64(int(frequency.total_seconds()), "s")
    bad = np.flatnonzero(steps != expected)
    if len(bad):
        i = int(bad[0])
        step = int(steps[i].astype("timedelta64[s]").astype(np.int64))
        if step > 0:
            described = frequency_to_string(datetime.timedelta(seconds=step))
        else:
            described = f"{step}s (dates not increasing)"
        raise ValueError(
            f"{where}: irregular time axis: expected one date every "
            f"{frequency_to_string(frequency)}, found a step of {described} between "
            f"{iso(dates[i])} and {iso(dates[i + 1])} ({len(bad)} irregular steps in all). "
            "squall needs a regular time axis; list absent dates as missing instead of "
            "leaving them out."
        )
