rule statistics:
    """Normalisation statistics over the training split only."""
    input:
        dataset_path,
    output:
        "results/{experiment}/statistics.json",
    params:
        start=lambda w: split(w, "training")["start"],
        end=lambda w: split(w, "training")["end"],
        held_out=lambda w: " ".join(
            f"--{name} {split(w, name)['start']} {split(w, name)['end']}"
            for name in ("validation", "test")
        ),
    log:
        "results/logs/{experiment}/statistics.log",
    benchmark:
        "results/benchmarks/{experiment}/statistics.tsv"
    container:
        CPU_IMAGE
    shell:
        "squall dataset statistics {input} {output} --start {params.start} --end {params.end}"
        " {params.held_out} > {log} 2>&1"
