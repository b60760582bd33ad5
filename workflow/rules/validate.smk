rule validate_config:
    """Hydra compose + schema + pre-flight against the data, graph and statistics."""
    input:
        dataset=dataset_path,
        graph="results/{experiment}/graph.pt",
        statistics="results/{experiment}/statistics.json",
        configs=training_config_files,
    output:
        "results/{experiment}/resolved.yaml",
    params:
        name=lambda w: experiment(w)["training_config"],
        overrides=config_overrides,
    log:
        "results/logs/{experiment}/validate_config.log",
    benchmark:
        "results/benchmarks/{experiment}/validate_config.tsv"
    run:
        shell(
            "squall config validate --preflight --config-name {params.name} --out {output} "
            + quoted(params.overrides)
            + " > {log} 2>&1"
        )
