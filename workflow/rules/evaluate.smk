EVALUATION_PLOTS = {
    "rmse_by_lead": "RMSE against lead time for the model and the baselines.",
    "acc_by_lead": "Anomaly correlation (against the training-split climatology).",
    "scorecard": "Scorecard: % RMSE improvement of the model over each baseline.",
    "forecast_map": "One forecast at the longest lead: forecast, truth and error.",
    "spectra": "Zonal power spectra at the longest lead: does the model keep small scales?",
}


rule evaluate:
    """Scores of the forecasts, persistence and climatology against the truth; plots. An
    interpolator is scored per target hour against linear interpolation in time and the
    nearer true input, an autoencoder's reconstruction against the climatology."""
    input:
        forecasts="results/{experiment}/forecasts.zarr",
        dataset=dataset_path,
    output:
        scores=report(
            "results/{experiment}/evaluation/scores.csv",
            caption="../report/scores.rst",
            category="{experiment}",
            subcategory="scores",
        ),
        scores_json="results/{experiment}/evaluation/scores.json",
        plots=[
            report(
                f"results/{{experiment}}/evaluation/plots/{name}.png",
                caption=f"../report/{name}.rst",
                category="{experiment}",
                subcategory="plots",
            )
            for name in EVALUATION_PLOTS
        ],
    params:
        climatology=lambda w: split(w, "training"),
    log:
        "results/logs/{experiment}/evaluate.log",
    benchmark:
        "results/benchmarks/{experiment}/evaluate.tsv"
    container:
        CPU_IMAGE
    shell:
        "squall evaluate {input.forecasts} --truth {input.dataset}"
        " --climatology-start {params.climatology[start]}"
        " --climatology-end {params.climatology[end]}"
        " --out results/{wildcards.experiment}/evaluation > {log} 2>&1"
