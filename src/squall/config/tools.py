"""`squall config generate / dump / schema`: a user's copy of the templates, the resolved
config, and the JSON schema for editors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from squall.config.compose import BUILTIN_CONFIG_DIR, load_config
from squall.config.schema import SquallConfig


def generate(target: str | Path, force: bool = False) -> Path:
    """Copy the shipped templates to `target`; it then comes first on the search path when
    passed as --config-dir, so the user edits their copy and the rest falls back to ours."""
    target = Path(target)
    if target.exists() and any(target.iterdir()) and not force:
        raise FileExistsError(
            f"{target} exists and is not empty: choose another folder, or pass --force to "
            "overwrite the files it shares with the templates"
        )
    shutil.copytree(BUILTIN_CONFIG_DIR, target, dirs_exist_ok=True)
    return target


def dump(config_name: str, overrides: list[str], config_dir: str | Path) -> str:
    """The composed, validated config as YAML (no files are opened)."""
    config = load_config(config_name, overrides, config_dir)
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def json_schema() -> str:
    schema = SquallConfig.model_json_schema()
    schema["title"] = "squall training config"
    return json.dumps(schema, indent=2)
