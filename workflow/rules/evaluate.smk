rule evaluate:
    """Forecasts over the test split from the exported model; RMSE vs persistence/climatology."""
    input:
        model="results/{experiment}/model.squall",
        dataset=dataset_path,
    output:
        forecasts=directory("results/{experiment}/evaluation/forecasts.zarr"),
        scores=report(
            "results/{experiment}/evaluation/scores.csv",
            caption="../report/scores.rst",
            category="{experiment}",
        ),
        rmse=report(
            "results/{experiment}/evaluation/plots/rmse_by_lead.png",
            caption="../report/rmse_by_lead.rst",
            category="{experiment}",
        ),
        map=report(
            "results/{experiment}/evaluation/plots/forecast_map.png",
            caption="../report/forecast_map.rst",
            category="{experiment}",
        ),
    params:
        test=lambda w: split(w, "test"),
        climatology=lambda w: split(w, "training"),
        lead_time=lambda w: experiment(w)["evaluation"]["lead_time"],
    log:
        "results/logs/{experiment}/evaluate.log",
    benchmark:
        "results/benchmarks/{experiment}/evaluate.tsv"
    shell:
        "squall evaluate {input.model} --dataset {input.dataset}"
        " --start {params.test[start]} --end {params.test[end]} --lead-time {params.lead_time}"
        " --climatology-start {params.climatology[start]} --climatology-end {params.climatology[end]}"
        " --out results/{wildcards.experiment}/evaluation > {log} 2>&1"
