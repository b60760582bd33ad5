"""Compose the Hydra tree, validate it with the schema, and turn failures into plain advice."""

from __future__ import annotations

import difflib
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf
from omegaconf.errors import MissingMandatoryValue
from pydantic import BaseModel, ValidationError

from squall.config.schema import SquallConfig

DEFAULT_CONFIG_DIR = Path("configs/training")


class ConfigError(ValueError):
    """A config a user wrote (or overrode) that squall cannot run; the message says what to do."""


def compose_config(
    config_name: str = "config",
    overrides: list[str] | None = None,
    config_dir: str | Path = DEFAULT_CONFIG_DIR,
) -> dict:
    """Hydra compose of `config_dir/config_name.yaml` with command-line style overrides."""
    config_dir = Path(config_dir).resolve()
    if not (config_dir / f"{config_name}.yaml").is_file():
        available = sorted(p.stem for p in config_dir.glob("*.yaml"))
        raise ConfigError(
            f"no training config '{config_name}' in {config_dir}; top-level configs there: "
            f"{', '.join(available) or 'none'}"
        )
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        cfg = compose(config_name=config_name, overrides=list(overrides or []))
    try:
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as error:
        key = error.full_key
        raise ConfigError(
            f"'{key}' must be set (it is ??? in the template): add it to your config file, or "
            f"pass it on the command line, e.g. `{key}=...`"
        ) from None


def validate_config(raw: dict) -> SquallConfig:
    """Check a composed config against the schema; errors name the key, the value and a fix."""
    try:
        return SquallConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_explain(error)) from None


def load_config(
    config_name: str = "config",
    overrides: list[str] | None = None,
    config_dir: str | Path = DEFAULT_CONFIG_DIR,
) -> SquallConfig:
    return validate_config(compose_config(config_name, overrides, config_dir))


def _explain(error: ValidationError) -> str:
    lines = [f"the training config has {error.error_count()} problem(s):"]
    for item in error.errors():
        location = [str(part) for part in item["loc"]]
        key = ".".join(location)
        if item["type"] == "extra_forbidden":
            valid = _valid_keys(SquallConfig, location[:-1])
            close = difflib.get_close_matches(location[-1], valid, n=1)
            hint = (
                f"did you mean '{'.'.join([*location[:-1], close[0]])}'?"
                if close
                else (f"valid keys here: {', '.join(sorted(valid))}")
            )
            lines.append(f"- unknown key '{key}': {hint}")
        elif item["type"] == "missing":
            lines.append(f"- '{key}' is required: set it in your config or as `{key}=...`")
        else:
            value = item.get("input")
            lines.append(f"- '{key}' = {value!r}: {item['msg']}")
    return "\n".join(lines)


def _valid_keys(model: type[BaseModel], path: list[str]) -> list[str]:
    for part in path:
        field = model.model_fields.get(part)
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)
