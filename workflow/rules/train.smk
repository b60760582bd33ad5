rule train:
    """Lightning training; MLflow logs to results/mlflow.db. model.ckpt: the checkpoint the run
    chose (lowest validation loss). A run stopped for wall time (exit 75) keeps checkpoints/ and
    the next `snakemake` continues it (--resume auto); a changed config starts afresh."""
    input:
        resolved="results/{experiment}/resolved.yaml",
        dataset=dataset_path,
        graph="results/{experiment}/graph.pt",
        statistics=statistics_paths,
    output:
        "results/{experiment}/model.ckpt",
    log:
        "results/logs/{experiment}/train.log",
    benchmark:
        "results/benchmarks/{experiment}/train.tsv"
    threads: lambda w: hardware(w)["cpus_per_task"]
    params:
        launch=launch_prefix,
    resources:
        mlflow_db=1,  # one writer at a time on the local sqlite store
        # A Slurm profile turns these into the job: nodes x tasks (one rank per GPU).
        nodes=lambda w: hardware(w)["nodes"],
        tasks=lambda w: hardware(w)["nodes"] * hardware(w)["tasks_per_node"],
        cpus_per_task=lambda w: hardware(w)["cpus_per_task"],
        mem_mb_per_cpu=lambda w: hardware(w)["mem_mb_per_task"] // hardware(w)["cpus_per_task"],
        runtime=lambda w: hardware(w)["runtime_minutes"],
        mpi="srun",
        slurm_extra=train_slurm_extra,
    container:
        TRAIN_IMAGE_OF_RULE  # None under srun: the launch prefix runs the image itself
    shell:
        "OMP_NUM_THREADS={threads} {params.launch} squall train {input.resolved} --resume auto > {log} 2>&1"
