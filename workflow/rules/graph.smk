rule graph:
    """A graph recipe (configs/training/graph) on the dataset's grid -> graph.pt with the grid's hash."""
    input:
        dataset=dataset_path,
        recipe=lambda w: f"configs/training/graph/{experiment(w)['graph']}.yaml",
    output:
        "results/{experiment}/graph.pt",
    params:
        recipe=lambda w: recipe_content(f"configs/training/graph/{experiment(w)['graph']}.yaml"),
    log:
        "results/logs/{experiment}/graph.log",
    benchmark:
        "results/benchmarks/{experiment}/graph.tsv"
    container:
        CPU_IMAGE
    shell:
        "squall graph create {input.recipe} --dataset {input.dataset} {output} > {log} 2>&1"
