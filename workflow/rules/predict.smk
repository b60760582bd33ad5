rule predict:
    """Forecasts from every initial time of the test split, from the exported model. An
    interpolator predicts the hours between every input pair of the split, an autoencoder
    reconstructs every state of it (the task comes from the model; no lead time needed)."""
    input:
        model="results/{experiment}/model.squall",
        dataset=dataset_path,
    output:
        directory("results/{experiment}/forecasts.zarr"),
    params:
        test=lambda w: split(w, "test"),
        lead_time=lambda w: (
            f"--lead-time {experiment(w)['evaluation']['lead_time']}"
            if "lead_time" in experiment(w)["evaluation"]
            else ""
        ),
        # ensemble and diffusion models: members per initial time (the noise makes them differ)
        members=lambda w: (
            f"--members {experiment(w)['evaluation']['members']}"
            if "members" in experiment(w)["evaluation"]
            else ""
        ),
    log:
        "results/logs/{experiment}/predict.log",
    benchmark:
        "results/benchmarks/{experiment}/predict.tsv"
    container:
        CPU_IMAGE
    shell:
        "squall predict {input.model} --dataset {input.dataset}"
        " --start {params.test[start]} --end {params.test[end]} {params.lead_time}"
        " {params.members} --out {output} > {log} 2>&1"
