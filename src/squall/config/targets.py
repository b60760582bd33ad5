"""`_target_` allowlist: configs are data, not code, unless the user opts in."""

from __future__ import annotations

from typing import Any

from squall.config.problems import Problem

ALLOWED_PREFIXES = (
    "squall.",
    "torch.nn.",
    "torch.optim.",
    "pytorch_lightning.callbacks.",
    "lightning.pytorch.callbacks.",
)
ALLOWED = ", ".join(f"{prefix}*" for prefix in ALLOWED_PREFIXES)
OPT_IN_KEY = "allow_any_target"


def _refusal(value: Any) -> str:
    return (
        f"{value!r} is not in the allowlist ({ALLOWED}); configs name classes, they do not run "
        f"arbitrary code. If you trust this config, set `{OPT_IN_KEY}: true` at its top level"
    )


def target_problems(tree: Any, path: str = "") -> list[Problem]:
    """Every `_target_` in the tree that names a class outside the allowlist."""
    problems: list[Problem] = []
    if isinstance(tree, dict):
        for key, value in tree.items():
            where = f"{path}.{key}" if path else str(key)
            if key != "_target_":
                problems.extend(target_problems(value, where))
            elif not isinstance(value, str) or not value.startswith(ALLOWED_PREFIXES):
                problems.append(Problem(where, _refusal(value)))
    elif isinstance(tree, list):
        for index, item in enumerate(tree):
            problems.extend(target_problems(item, f"{path}[{index}]"))
    return problems
