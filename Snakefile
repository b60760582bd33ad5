# squall pipeline: dataset -> graph -> statistics -> config -> train -> export -> evaluate.
# Every rule runs one `squall` command with files in and files out; `params:` carry the config
# values each stage depends on, so editing a value reruns exactly the stages it affects.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "configs/pipeline.yaml"


validate(config, "workflow/schemas/pipeline.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/dataset.smk"
include: "workflow/rules/graph.smk"
include: "workflow/rules/statistics.smk"
include: "workflow/rules/validate.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/export.smk"
include: "workflow/rules/predict.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/multi_dataset.smk"


DEFAULT_EXPERIMENTS = config.get("run", list(config["experiments"]))


rule all:
    input:
        expand("results/{experiment}/evaluation/scores.csv", experiment=DEFAULT_EXPERIMENTS),
        expand("results/{experiment}/model.squall", experiment=DEFAULT_EXPERIMENTS),
    default_target: True
