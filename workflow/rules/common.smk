import shlex
from pathlib import Path

import yaml


def experiment(wildcards):
    name = wildcards.experiment
    if name not in config["experiments"]:
        raise ValueError(
            f"no experiment '{name}' in configs/pipeline.yaml; it has {list(config['experiments'])}"
        )
    return config["experiments"][name]


def dataset_path(wildcards):
    return f"results/datasets/{experiment(wildcards)['dataset']}.zarr"


def recipe_content(path):
    """A recipe file's parsed content: a param, so editing the recipe reruns its stage."""
    return yaml.safe_load(Path(path).read_text())


def split(wildcards, name):
    return experiment(wildcards)["splits"][name]


def training_config_files(wildcards):
    return sorted(str(p) for p in Path("configs/training").rglob("*.yaml"))


def config_overrides(wildcards):
    """Hydra overrides the pipeline adds: inputs, outputs, splits, then the user's own."""
    spec = experiment(wildcards)
    root = f"results/{wildcards.experiment}"
    overrides = [
        f"system.input.dataset={dataset_path(wildcards)}",
        f"system.input.graph={root}/graph.pt",
        f"system.input.statistics={root}/statistics.json",
        f"system.output.root={root}",
    ]
    for stage in ("training", "validation", "test"):
        for bound in ("start", "end"):
            overrides.append(f"dataloader.{stage}.{bound}={spec['splits'][stage][bound]}")
    return overrides + list(spec.get("overrides", []))


def quoted(items):
    return " ".join(shlex.quote(str(item)) for item in items)
