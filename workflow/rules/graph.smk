rule graph:
    """The dataset's grid + a graph recipe (configs/graphs) -> graph.pt with the grid's hash."""
    input:
        dataset=dataset_path,
        recipe=lambda w: f"configs/graphs/{experiment(w)['graph']}.yaml",
    output:
        "results/{experiment}/graph.pt",
    params:
        recipe=lambda w: recipe_content(f"configs/graphs/{experiment(w)['graph']}.yaml"),
    log:
        "results/logs/{experiment}/graph.log",
    benchmark:
        "results/benchmarks/{experiment}/graph.tsv"
    shell:
        "squall graph create {input.dataset} {output} --recipe {input.recipe} > {log} 2>&1"
