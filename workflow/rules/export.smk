rule export:
    """Checkpoint -> model.squall/ (weights.safetensors + metadata.json, no pickle)."""
    input:
        checkpoint="results/{experiment}/model.ckpt",
        graph="results/{experiment}/graph.pt",
    output:
        directory("results/{experiment}/model.squall"),
    log:
        "results/logs/{experiment}/export.log",
    benchmark:
        "results/benchmarks/{experiment}/export.tsv"
    container:
        CPU_IMAGE
    shell:
        "squall export {input.checkpoint} {output} --graph {input.graph} > {log} 2>&1"
