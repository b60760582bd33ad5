"""Compose the Hydra tree, validate it with the schema, and turn failures into plain advice."""

from __future__ import annotations

import difflib
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from omegaconf import OmegaConf
from pydantic import BaseModel, ValidationError

from squall.config.problems import ConfigError, Problem
from squall.config.schema import SquallConfig
from squall.config.semantics import semantic_problems
from squall.config.targets import OPT_IN_KEY, target_problems

# The shipped templates: a repository checkout's configs/training (squall installs editable).
BUILTIN_CONFIG_DIR = Path(__file__).resolve().parents[3] / "configs" / "training"
DEFAULT_CONFIG_DIR = Path("configs/training")

_PLACEHOLDER = (
    "must be set (it is ??? in the template): add it to your config file, or pass it on the "
    "command line, e.g. `{key}=...`"
)

__all__ = ["ConfigError", "compose_config", "load_config", "validate_config"]


def compose_config(
    config_name: str = "config",
    overrides: list[str] | None = None,
    config_dir: str | Path = DEFAULT_CONFIG_DIR,
) -> dict:
    """Hydra compose of `config_name` with command-line style overrides.

    `config_dir` (a user's folder, e.g. from `squall config generate`) comes first on the search
    path; the shipped templates come after it, so a user's file shadows the shipped one.
    """
    config_dir = Path(config_dir)
    if not config_dir.is_dir():
        config_dir = BUILTIN_CONFIG_DIR
    config_dir = config_dir.resolve()
    search = [config_dir] + ([BUILTIN_CONFIG_DIR] if config_dir != BUILTIN_CONFIG_DIR else [])
    if not any((d / f"{config_name}.yaml").is_file() for d in search):
        available = sorted({p.stem for d in search for p in d.glob("*.yaml")})
        raise ConfigError(
            [
                Problem(
                    "config-name",
                    (
                        f"no training config '{config_name}' in {' or '.join(map(str, search))}; "
                        f"top-level configs there: {', '.join(available) or 'none'}"
                    ),
                )
            ]
        )
    extra = [f"hydra.searchpath=[file://{BUILTIN_CONFIG_DIR}]"] if len(search) > 1 else []
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base=None):
            cfg = compose(config_name=config_name, overrides=[*extra, *(overrides or [])])
    except HydraException as error:
        reason = " ".join(line.strip() for line in str(error).splitlines()[:2])
        raise ConfigError([Problem("overrides", reason)]) from None
    # Placeholders still `???` stay in the tree: validate_config reports them with the rest.
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)


def validate_config(raw: dict) -> SquallConfig:
    """Check a composed config: schema, `_target_` allowlist, then the semantic rules. Every
    problem is reported at once, each with its key, the bad value and a fix."""
    raw = dict(raw)
    allow_any_target = bool(raw.pop(OPT_IN_KEY, False))
    placeholders = sorted(_placeholders(raw))
    problems = [Problem(key, _PLACEHOLDER.format(key=key)) for key in placeholders]
    problems += [] if allow_any_target else target_problems(raw)
    try:
        config = SquallConfig.model_validate(raw)
    except ValidationError as error:
        schema = [p for p in _explain(error) if p.key not in placeholders]
        raise ConfigError(problems + schema) from None
    problems = problems or semantic_problems(config)  # semantics only of a well-formed tree
    if problems:
        raise ConfigError(problems)
    return config


def load_config(
    config_name: str = "config",
    overrides: list[str] | None = None,
    config_dir: str | Path = DEFAULT_CONFIG_DIR,
) -> SquallConfig:
    return validate_config(compose_config(config_name, overrides, config_dir))


def _placeholders(tree: object, path: str = "") -> list[str]:
    """Keys whose value is still Hydra's mandatory-value marker `???`."""
    if isinstance(tree, dict):
        found = []
        for key, value in tree.items():
            found += _placeholders(value, f"{path}.{key}" if path else str(key))
        return found
    return [path] if tree == "???" else []


def _explain(error: ValidationError) -> list[Problem]:
    problems = []
    for item in error.errors():
        location = [str(part) for part in item["loc"]]
        # A list or tuple item is reported against the list itself: `betas`, not `betas.1`.
        items = [part for part in item["loc"] if isinstance(part, int)]
        location = [
            part
            for part, raw in zip(location, item["loc"], strict=True)
            if not isinstance(raw, int)
        ]
        key = ".".join(location)
        if items and item["type"] == "missing":
            problems.append(Problem(key, f"has too few items (item {items[-1]} is missing)"))
            continue
        if item["type"] == "extra_forbidden":
            valid = _valid_keys(SquallConfig, location[:-1])
            close = difflib.get_close_matches(location[-1], valid, n=1)
            hint = (
                f"did you mean '{'.'.join([*location[:-1], close[0]])}'?"
                if close
                else f"valid keys here: {', '.join(sorted(valid))}"
            )
            problems.append(Problem(key, f"unknown key; {hint}"))
        elif item["type"] == "missing":
            problems.append(Problem(key, f"is required: set it in your config or as `{key}=...`"))
        else:
            problems.append(Problem(key, f"got {item.get('input')!r}: {item['msg']}"))
    return problems


def _valid_keys(model: type[BaseModel], path: list[str]) -> list[str]:
    for part in path:
        field = model.model_fields.get(part)
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)
