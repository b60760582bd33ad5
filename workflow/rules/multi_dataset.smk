# Experiments on several datasets (configs/pipeline.yaml: `datasets` instead of `dataset`): one
# graph over all their grids, statistics per dataset, and for a downscaler scores against
# interpolation of its coarse input. Dataset, validate_config, train and export are the
# common rules; these rules take over the graph and evaluation of those experiments only.


ruleorder: multi_dataset_graph > graph
ruleorder: evaluate_downscaling > evaluate


def graph_dataset_arguments(wildcards):
    return quoted(
        f"--dataset={name}={spec}" for name, spec in dataset_specs(wildcards).items()
    )


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
        experiment=MULTI_DATASET_EXPERIMENTS,
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
