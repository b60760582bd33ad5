import shlex
from pathlib import Path

import yaml
from snakemake.settings.types import DeploymentMethod


def experiment(wildcards):
    name = wildcards.experiment
    if name not in config["experiments"]:
        raise ValueError(
            f"no experiment '{name}' in configs/pipeline.yaml; it has {list(config['experiments'])}"
        )
    return config["experiments"][name]


def dataset_path(wildcards):
    spec = experiment(wildcards)
    if "datasets" in spec:  # several datasets: the stores their recipes make
        return sorted({f"results/datasets/{d['dataset']}.zarr" for d in spec["datasets"].values()})
    return f"results/datasets/{spec['dataset']}.zarr"


def dataset_specs(wildcards):
    """Several datasets: name -> open_dataset mapping (its recipe's store + selectors), as YAML."""
    return {
        name: yaml.safe_dump(
            {**entry, "dataset": f"results/datasets/{entry['dataset']}.zarr"},
            default_flow_style=True,
            width=1000,
        ).strip()
        for name, entry in experiment(wildcards)["datasets"].items()
    }


def statistics_paths(wildcards):
    """statistics.json, or one statistics_<name>.json per dataset of a multi-dataset run."""
    root = f"results/{wildcards.experiment}"
    if "datasets" not in experiment(wildcards):
        return [f"{root}/statistics.json"]
    return [f"{root}/statistics_{name}.json" for name in experiment(wildcards)["datasets"]]


# Experiments on several datasets (downscaling, ...): their graph, statistics and evaluation
# rules are in multi_dataset.smk (a regex of their names, for wildcard_constraints).
MULTI_DATASET_EXPERIMENTS = "|".join(
    name for name, spec in config["experiments"].items() if "datasets" in spec
) or "(?!)"


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


# Apptainer images (containers/, `make containers`), used when snakemake runs with
# --sdm apptainer. Under srun there is no srun inside an image: the train rule runs
# `srun ... apptainer exec --nv IMAGE squall train` itself.
CONTAINERS = {
    "cpu": "results/containers/squall-cpu.sif",
    "train": "results/containers/squall-cuda.sif",
    **config.get("containers", {}),
}
CPU_IMAGE = CONTAINERS["cpu"]
USE_APPTAINER = DeploymentMethod.APPTAINER in workflow.deployment_settings.deployment_method
SRUN = config.get("launcher", "local") == "srun"
TRAIN_IMAGE_OF_RULE = None if SRUN else CONTAINERS["train"]


def launch_prefix(wildcards):
    """How the train rule starts its ranks: directly (Lightning launches local ranks itself),
    or one `srun` task per rank so that Lightning's SLURM environment sees every rank."""
    if not SRUN:
        return ""
    spec = hardware(wildcards)
    prefix = f"srun --nodes={spec['nodes']} --ntasks-per-node={spec['tasks_per_node']}"
    if USE_APPTAINER:
        prefix += f" apptainer exec --nv {shlex.quote(CONTAINERS['train'])}"
    return prefix


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


def initial_checkpoint(wildcards):
    """The checkpoint an experiment starts from (its override
    training.initialisation.checkpoint=...): an input, so the run that makes it comes first."""
    prefix = "training.initialisation.checkpoint="
    overrides = experiment(wildcards).get("overrides", [])
    return [entry[len(prefix) :] for entry in overrides if entry.startswith(prefix)]


def config_overrides(wildcards):
    """Hydra overrides the pipeline adds: inputs, outputs, splits, then the user's own."""
    spec = experiment(wildcards)
    root = f"results/{wildcards.experiment}"
    if "datasets" in spec:  # several datasets: a store and statistics each
        overrides = [f"system.input.graph={root}/graph.pt", f"system.output.root={root}"]
        for name, dataset in dataset_specs(wildcards).items():
            overrides += [
                f"system.input.datasets.{name}.dataset={dataset}",
                f"system.input.datasets.{name}.statistics={root}/statistics_{name}.json",
            ]
    else:
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
