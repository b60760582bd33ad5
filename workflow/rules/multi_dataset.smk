# Experiments on several datasets (configs/pipeline.yaml: `datasets` instead of `dataset`): one
# graph over all their grids, statistics per dataset; a downscaler (evaluation.lead_time 0h) is
# scored against interpolation of its coarse input, a forecaster rolls out from every test
# initial time and each output dataset is scored against persistence and climatology. Dataset,
# validate_config, train and export are the common rules; these rules take over the graph,
# forecasts and evaluation of those experiments only.


ruleorder: multi_dataset_graph > graph
ruleorder: evaluate_downscaling > evaluate
ruleorder: evaluate_multi_dataset > evaluate


def _experiments_where(keep):
    """A regex of the multi-dataset experiments for which keep(spec) holds (never matches if none)."""
    names = [
        name
        for name, spec in config["experiments"].items()
        if "datasets" in spec and keep(spec)
    ]
    return "|".join(names) or "(?!)"


def _is_downscaler(spec):
    return str(spec["evaluation"]["lead_time"]) in ("0", "0h")


DOWNSCALING_EXPERIMENTS = _experiments_where(_is_downscaler)
MULTI_DATASET_FORECASTERS = _experiments_where(lambda spec: not _is_downscaler(spec))


def named_dataset_arguments(flag):
    """--FLAG=NAME=SPEC for each dataset of the experiment (a params function)."""
    return lambda wildcards: quoted(
        f"{flag}={name}={spec}" for name, spec in dataset_specs(wildcards).items()
    )


graph_dataset_arguments = named_dataset_arguments("--dataset")


rule multi_dataset_graph:
    """A graph recipe on several datasets' grids: one data node set per dataset."""
    input:
        datasets=dataset_path,
        recipe=lambda w: f"configs/training/graph/{experiment(w)['graph']}.yaml",
    output:
        "results/{experiment}/graph.pt",
    wildcard_constraints:
        experiment=MULTI_DATASET_EXPERIMENTS,
    params:
        recipe=lambda w: recipe_content(f"configs/training/graph/{experiment(w)['graph']}.yaml"),
        datasets=graph_dataset_arguments,
    log:
        "results/logs/{experiment}/graph.log",
    benchmark:
        "results/benchmarks/{experiment}/graph.tsv"
    container:
        CPU_IMAGE
    shell:
        "squall graph create {input.recipe} {params.datasets} {output} > {log} 2>&1"


rule dataset_statistics:
    """One dataset's normalisation statistics over the training split only."""
    input:
        dataset_path,
    output:
        "results/{experiment}/statistics_{name}.json",
    wildcard_constraints:
        experiment=MULTI_DATASET_EXPERIMENTS,
    params:
        dataset=lambda w: dataset_specs(w)[w.name],
        start=lambda w: split(w, "training")["start"],
        end=lambda w: split(w, "training")["end"],
        held_out=lambda w: " ".join(
            f"--{name} {split(w, name)['start']} {split(w, name)['end']}"
            for name in ("validation", "test")
        ),
    log:
        "results/logs/{experiment}/statistics_{name}.log",
    benchmark:
        "results/benchmarks/{experiment}/statistics_{name}.tsv"
    container:
        CPU_IMAGE
    shell:
        "squall dataset statistics {params.dataset:q} {output} --start {params.start}"
        " --end {params.end} {params.held_out} > {log} 2>&1"


rule evaluate_downscaling:
    """A downscaler's scores on the fine grid against bilinear and nearest-neighbour
    interpolation of its coarse input, over the test split."""
    input:
        model="results/{experiment}/model.squall",
        datasets=dataset_path,
    output:
        scores=report(
            "results/{experiment}/evaluation/scores.csv",
            caption="../report/downscaling_scores.rst",
            category="{experiment}",
            subcategory="scores",
        ),
        scores_json="results/{experiment}/evaluation/scores.json",
        plots=[
            report(
                f"results/{{experiment}}/evaluation/plots/{name}.png",
                caption="../report/downscaling.rst",
                category="{experiment}",
                subcategory="plots",
            )
            for name in ("scorecard", "downscaled_map")
        ],
    wildcard_constraints:
        experiment=DOWNSCALING_EXPERIMENTS,
    params:
        datasets=graph_dataset_arguments,
        test=lambda w: split(w, "test"),
    log:
        "results/logs/{experiment}/evaluate.log",
    benchmark:
        "results/benchmarks/{experiment}/evaluate.tsv"
    container:
        CPU_IMAGE
    shell:
        "squall evaluate-downscaling {input.model} {params.datasets}"
        " --start {params.test[start]} --end {params.test[end]}"
        " --out results/{wildcards.experiment}/evaluation > {log} 2>&1"


rule predict_multi_dataset:
    """A forecaster on several datasets: rollouts from every initial time of the test split,
    forecasts/<dataset>.zarr per output dataset."""
    input:
        model="results/{experiment}/model.squall",
        datasets=dataset_path,
    output:
        directory("results/{experiment}/forecasts"),
    wildcard_constraints:
        experiment=MULTI_DATASET_FORECASTERS,
    params:
        datasets=graph_dataset_arguments,
        test=lambda w: split(w, "test"),
        lead_time=lambda w: experiment(w)["evaluation"]["lead_time"],
    log:
        "results/logs/{experiment}/predict.log",
    benchmark:
        "results/benchmarks/{experiment}/predict.tsv"
    container:
        CPU_IMAGE
    shell:
        "squall predict-multi-dataset {input.model} {params.datasets}"
        " --start {params.test[start]} --end {params.test[end]} --lead-time {params.lead_time}"
        " --out {output} > {log} 2>&1"


rule evaluate_multi_dataset:
    """Each output dataset's forecasts scored against its truth, persistence and climatology:
    scores.csv with a dataset column; per-dataset scores and plots under datasets/<name>/."""
    input:
        forecasts="results/{experiment}/forecasts",
        datasets=dataset_path,
    output:
        scores=report(
            "results/{experiment}/evaluation/scores.csv",
            caption="../report/scores.rst",
            category="{experiment}",
            subcategory="scores",
        ),
        scores_json="results/{experiment}/evaluation/scores.json",
        per_dataset=directory("results/{experiment}/evaluation/datasets"),
    wildcard_constraints:
        experiment=MULTI_DATASET_FORECASTERS,
    params:
        truth=named_dataset_arguments("--truth"),
        climatology=lambda w: split(w, "training"),
    log:
        "results/logs/{experiment}/evaluate.log",
    benchmark:
        "results/benchmarks/{experiment}/evaluate.tsv"
    container:
        CPU_IMAGE
    shell:
        "squall evaluate-multi-dataset {input.forecasts} {params.truth}"
        " --climatology-start {params.climatology[start]}"
        " --climatology-end {params.climatology[end]}"
        " --out results/{wildcards.experiment}/evaluation > {log} 2>&1"


# Derived datasets (configs/datasets/<name>.yaml with `derived:`, an open_dataset mapping of
# other stores, e.g. a cut-out): written as a store of their own, so single-dataset experiments
# use them as they use any recipe's store.
DERIVED_DATASETS = "|".join(
    path.stem
    for path in sorted(Path("configs/datasets").glob("*.yaml"))
    if "derived" in (recipe_content(path) or {})
) or "(?!)"


ruleorder: derived_dataset > dataset


def recipe_stores(path):
    """The stores a derived recipe's mapping names: built first by their own rules."""
    from squall.data.derived import stores_of

    return stores_of(recipe_content(path)["derived"])


rule derived_dataset:
    """A selection or combination of other stores (a derived recipe) -> anemoi-layout zarr."""
    input:
        recipe="configs/datasets/{dataset}.yaml",
        stores=lambda w: recipe_stores(f"configs/datasets/{w.dataset}.yaml"),
    output:
        directory("results/datasets/{dataset}.zarr"),
    wildcard_constraints:
        dataset=DERIVED_DATASETS,
    params:
        recipe=lambda w: recipe_content(f"configs/datasets/{w.dataset}.yaml"),
    log:
        "results/logs/dataset_{dataset}.log",
    benchmark:
        "results/benchmarks/dataset_{dataset}.tsv"
    container:
        CPU_IMAGE
    shell:
        "squall dataset derive {input.recipe} {output} > {log} 2>&1"
