"""Config problems, collected and reported all at once: key, bad value, what to do."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    key: str  # dotted path, e.g. "model.hidden_channels"
    message: str  # what is wrong and what to do

    def __str__(self) -> str:
        return f"- {self.key}: {self.message}"


class ConfigError(ValueError):
    """A config a user wrote (or overrode) that squall cannot run; the message says what to do."""

    def __init__(self, problems: list[Problem] | str):
        if isinstance(problems, str):
            problems = [Problem("config", problems)]
        self.problems = list(problems)
        count = len(self.problems)
        header = f"the training config has {count} problem{'s' if count > 1 else ''}:"
        super().__init__("\n".join([header, *map(str, self.problems)]))

    @property
    def keys(self) -> list[str]:
        return [problem.key for problem in self.problems]
