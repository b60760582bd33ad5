rule validate_config:
    """Hydra compose + schema + pre-flight against the data, graph and statistics."""
    input:
        dataset=dataset_path,
        graph="results/{experiment}/graph.pt",
        statistics=statistics_paths,
        configs=training_config_files,
        initial=initial_checkpoint,
    output:
        "results/{experiment}/resolved.yaml",
    params:
        name=lambda w: experiment(w)["training_config"],
        overrides=config_overrides,
        quoted_overrides=lambda w: quoted(config_overrides(w)),
    log:
        "results/logs/{experiment}/validate_config.log",
    benchmark:
        "results/benchmarks/{experiment}/validate_config.tsv"
    container:
        CPU_IMAGE
    shell:
        "squall config validate --preflight --config-name {params.name} --out {output}"
        " {params.quoted_overrides} > {log} 2>&1"
