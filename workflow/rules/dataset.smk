rule dataset:
    """Raw files -> anemoi-layout zarr, from a recipe in configs/datasets."""
    input:
        recipe="configs/datasets/{dataset}.yaml",
        sources=lambda w: [s["path"] for s in recipe_content(f"configs/datasets/{w.dataset}.yaml").get("sources", [])],
    output:
        directory("results/datasets/{dataset}.zarr"),
    params:
        recipe=lambda w: recipe_content(f"configs/datasets/{w.dataset}.yaml"),
    log:
        "results/logs/dataset_{dataset}.log",
    benchmark:
        "results/benchmarks/dataset_{dataset}.tsv"
    container:
        CPU_IMAGE
    shell:
        "squall dataset create --quiet {input.recipe} {output} > {log} 2>&1"
