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


HARDWARE_DEFAULTS = {
    "nodes": 1,
    "tasks_per_node": 1,
    "accelerator": "auto",
    "cpus_per_task": 2,
    "mem_mb_per_task": 8000,
    "runtime_minutes": 60,
    "gpus_per_node": None,  # default: tasks_per_node with accelerator gpu, else none
    "walltime_signal_seconds": 300,  # SIGUSR1 this long before the time limit: checkpoint, stop
}


def hardware(wildcards):
    """The experiment's training hardware (configs/pipeline.yaml), with defaults."""
    return {**HARDWARE_DEFAULTS, **experiment(wildcards).get("hardware", {})}


def launch_prefix(wildcards):
    """How the train rule starts its ranks: directly (Lightning launches local ranks itself),
    or one `srun` task per rank so that Lightning's SLURM environment sees every rank."""
    if config.get("launcher", "local") != "srun":
        return ""
    spec = hardware(wildcards)
    return f"srun --nodes={spec['nodes']} --ntasks-per-node={spec['tasks_per_node']}"


def train_slurm_extra(wildcards):
    """sbatch options of the train job the plugin has no resource for: GPUs per node, and the
    signal before the time limit (sent to the srun tasks, i.e. to every training rank)."""
    spec = hardware(wildcards)
    gpus = spec["gpus_per_node"]
    if gpus is None:
        gpus = spec["tasks_per_node"] if spec["accelerator"] == "gpu" else 0
    options = [f"--signal=USR1@{spec['walltime_signal_seconds']}"]
    if gpus:
        options.append(f"--gpus-per-node={gpus}")
    return " ".join(options)


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
    machine = hardware(wildcards)
    overrides += [
        f"system.hardware.num_nodes={machine['nodes']}",
        f"system.hardware.devices={machine['tasks_per_node']}",
        f"system.hardware.accelerator={machine['accelerator']}",
    ]
    return overrides + list(spec.get("overrides", []))


def quoted(items):
    return " ".join(shlex.quote(str(item)) for item in items)
