rule train:
    """Lightning training; MLflow logs to results/mlflow.db; best checkpoint by validation loss."""
    input:
        resolved="results/{experiment}/resolved.yaml",
        dataset=dataset_path,
        graph="results/{experiment}/graph.pt",
        statistics="results/{experiment}/statistics.json",
    output:
        "results/{experiment}/checkpoints/best.ckpt",
    log:
        "results/logs/{experiment}/train.log",
    benchmark:
        "results/benchmarks/{experiment}/train.tsv"
    threads: workflow.cores
    resources:
        mlflow_db=1,  # one writer at a time on the local sqlite store
    shell:
        "OMP_NUM_THREADS={threads} squall train {input.resolved} > {log} 2>&1"
