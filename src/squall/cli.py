"""`squall <group> <verb>`: parses arguments and calls one library function per command."""

from __future__ import annotations

import argparse
import os
import sys


def _dataset_create(args: argparse.Namespace) -> None:
    from squall.data.recipes import create_dataset

    create_dataset(args.recipe, args.out, resume=args.resume, progress=not args.quiet)
    print(f"wrote {args.out}")


def _dataset_derive(args: argparse.Namespace) -> None:
    from squall.data.derived import create_derived_dataset

    create_derived_dataset(args.recipe, args.out)
    print(f"wrote {args.out}")


def _dataset_statistics(args: argparse.Namespace) -> None:
    from squall.data.statistics import create_statistics_file

    held_out = {name: tuple(getattr(args, name)) for name in ("validation", "test")}
    create_statistics_file(
        _dataset_spec(args.dataset),
        args.out,
        args.start,
        args.end,
        args.tendency,
        held_out={name: period for name, period in held_out.items() if period},
    )
    print(f"wrote {args.out}")


def _dataset_inspect(args: argparse.Namespace) -> None:
    from squall.data.inspect import describe_dataset

    print(describe_dataset(args.dataset, count_nans=not args.no_nan_count))


def _dataset_spec(text: str) -> str | dict:
    """A dataset argument: a path, or an open_dataset mapping in YAML such as
    '{dataset: storm.zarr, thinning: 2}'."""
    if not text.lstrip().startswith("{"):
        return text
    import yaml

    return yaml.safe_load(text)


def _graph_create(args: argparse.Namespace) -> None:
    from squall.graphs.from_dataset import create_graph_for_dataset

    if len(args.dataset) == 1 and not _is_named(args.dataset[0]):
        create_graph_for_dataset(args.config, args.dataset[0], args.out)
    else:  # several datasets: one data node set each, named NAME
        from squall.graphs.multi_dataset import create_multi_dataset_graph_file

        named = [text.partition("=") for text in args.dataset]
        if not all(_is_named(text) for text in args.dataset):
            raise ValueError("with several datasets, give each as --dataset NAME=PATH")
        datasets = {name: _dataset_spec(spec) for name, _, spec in named}
        create_multi_dataset_graph_file(args.config, datasets, args.out)
    print(f"wrote {args.out}")


def _is_named(text: str) -> bool:
    name, separator, _ = text.partition("=")
    return bool(separator) and name.isidentifier()


def _graph_inspect(args: argparse.Namespace) -> None:
    from squall.graphs.inspect import inspect_graph
    from squall.graphs.io import load_graph

    graph, info = load_graph(args.graph)
    print(inspect_graph(graph, bins=args.bins))
    print(f"coordinates hash: {info.get('coordinates_hash')}; config: {info.get('config')}")


def _graph_plot(args: argparse.Namespace) -> None:
    from squall.graphs.io import load_graph
    from squall.graphs.plot import plot_graph

    graph, _ = load_graph(args.graph)
    out = args.out or os.path.splitext(args.graph)[0] + ".png"
    print(f"wrote {plot_graph(graph, out, max_edges=args.max_edges)}")


def _config_validate(args: argparse.Namespace) -> None:
    from squall.training.preflight import validate_to_file

    validate_to_file(args.config_name, args.overrides, args.config_dir, args.out, args.preflight)
    print(f"config '{args.config_name}' is valid; resolved config written to {args.out}")


def _config_generate(args: argparse.Namespace) -> None:
    from squall.config.tools import generate

    target = generate(args.dir, args.force)
    print(f"copied the templates to {target}; use them with --config-dir {target}")


def _config_dump(args: argparse.Namespace) -> None:
    from squall.config.tools import dump

    print(dump(args.config_name, args.overrides, args.config_dir), end="")


def _config_schema(args: argparse.Namespace) -> None:
    from squall.config.tools import json_schema

    print(json_schema())


def _train(args: argparse.Namespace) -> None:
    from squall.training.trainer import train_from_file
    from squall.training.walltime import INTERRUPTED_EXIT_CODE, TrainingInterrupted

    try:
        best = train_from_file(args.resolved, args.allow_lineage_mismatch, args.resume, args.fork)
    except TrainingInterrupted as stopped:
        print(f"squall train: {stopped}", file=sys.stderr)
        raise SystemExit(INTERRUPTED_EXIT_CODE) from None
    print(f"best checkpoint: {best}")


def _mlflow_sync(args: argparse.Namespace) -> None:
    from squall.training.tracking import sync_runs

    copied = sync_runs(args.source, args.target, args.experiment)
    print(f"copied {len(copied)} run(s) from {args.source} to {args.target}")


def _export(args: argparse.Namespace) -> None:
    from squall.export.artifact import summary, zip_artifact
    from squall.export.from_checkpoint import export_checkpoint

    if args.checkpoint == "inspect":
        print(summary(args.out))
        return
    export_checkpoint(args.checkpoint, args.out, args.graph, args.allow_lineage_mismatch)
    if args.zip:
        print(f"wrote {zip_artifact(args.out)}")
    print(summary(args.out))


def _predict(args: argparse.Namespace) -> None:
    from squall.evaluation.predict import predict_to_zarr

    out = predict_to_zarr(
        args.model,
        args.dataset,
        args.start,
        args.end,
        _hours(args.lead_time),
        args.out,
        batch_size=args.batch_size,
        device=args.device,
        members=args.members,
    )
    print(f"wrote {out}")


def _evaluate(args: argparse.Namespace) -> None:
    from squall.evaluation.evaluate import evaluate_to_dir

    baselines = dict(_name_and_path(text) for text in args.baseline or [])
    table = evaluate_to_dir(
        args.forecasts,
        args.truth,
        (args.climatology_start, args.climatology_end),
        args.out,
        baselines,
    )
    print("RMSE by variable and lead time (h):")
    print(table.to_string())


def _named_datasets(texts: list[str]) -> dict[str, str | dict]:
    """Repeated NAME=PATH (or NAME='{dataset: PATH, ...}') arguments -> {name: dataset}."""
    if not all(_is_named(text) for text in texts):
        raise ValueError("give each dataset as NAME=PATH (the names the model uses)")
    return {name: _dataset_spec(spec) for name, _, spec in (t.partition("=") for t in texts)}


def _evaluate_downscaling(args: argparse.Namespace) -> None:
    from squall.evaluation.downscaling import evaluate_downscaling

    datasets = _named_datasets(args.dataset)
    scores = evaluate_downscaling(args.model, datasets, args.start, args.end, args.out)
    rmse = scores[scores.metric == "rmse"]
    print("RMSE on the fine grid:")
    print(rmse.pivot_table(index="variable", columns="forecast", values="value").to_string())


def _predict_multi_dataset(args: argparse.Namespace) -> None:
    from squall.evaluation.predict_multi_dataset import predict_multi_dataset_to_dir

    out = predict_multi_dataset_to_dir(
        args.model,
        _named_datasets(args.dataset),
        args.start,
        args.end,
        _hours(args.lead_time),
        args.out,
        batch_size=args.batch_size,
        device=args.device,
    )
    print(f"wrote {out}")


def _evaluate_multi_dataset(args: argparse.Namespace) -> None:
    from squall.evaluation.evaluate_multi_dataset import evaluate_multi_dataset_to_dir

    table = evaluate_multi_dataset_to_dir(
        args.forecasts,
        _named_datasets(args.truth),
        (args.climatology_start, args.climatology_end),
        args.out,
    )
    print("RMSE by dataset, variable and lead time (h):")
    print(table.to_string())


def _name_and_path(text: str) -> tuple[str, str]:
    name, separator, path = text.partition("=")
    if not separator or not name or not path:
        raise ValueError(f"--baseline takes NAME=PATH (a forecasts zarr), got {text!r}")
    return name, path


def _hours(text: str) -> int:
    from squall.data.dates import frequency_to_timedelta

    return int(frequency_to_timedelta(text).total_seconds() // 3600)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="squall", description=__doc__)
    groups = parser.add_subparsers(dest="group", required=True)

    dataset = groups.add_parser("dataset", help="build and describe datasets").add_subparsers(
        dest="verb", required=True
    )
    create = dataset.add_parser("create", help="recipe (YAML) -> anemoi-layout zarr")
    create.add_argument("recipe")
    create.add_argument("out")
    create.add_argument(
        "--resume", action="store_true", help="continue an interrupted build of the same recipe"
    )
    create.add_argument("--quiet", action="store_true", help="no progress bar")
    create.set_defaults(run=_dataset_create)
    derive = dataset.add_parser(
        "derive", help="derived recipe (`derived:` an open_dataset mapping, e.g. a cutout) -> zarr"
    )
    derive.add_argument("recipe")
    derive.add_argument("out")
    derive.set_defaults(run=_dataset_derive)
    inspect = dataset.add_parser("inspect", help="variables, dates, grid, missing, NaN, stats")
    inspect.add_argument("dataset")
    inspect.add_argument("--no-nan-count", action="store_true", help="skip reading every date")
    inspect.set_defaults(run=_dataset_inspect)
    stats = dataset.add_parser("statistics", help="statistics over the training period")
    stats.add_argument(
        "dataset", help="dataset (.zarr), or a mapping '{dataset: PATH, thinning: 2}'"
    )
    stats.add_argument("out")
    stats.add_argument("--start", required=True, help="first date of the training period")
    stats.add_argument("--end", required=True, help="last date of the training period")
    stats.add_argument(
        "--tendency",
        action="append",
        default=None,
        help="tendency interval, e.g. 6h (repeatable; default: 6h)",
    )
    for held_out in ("validation", "test"):
        stats.add_argument(
            f"--{held_out}",
            nargs=2,
            default=(),
            metavar=("START", "END"),
            help=f"the {held_out} period: refused if it overlaps START..END of the statistics",
        )
    stats.set_defaults(run=_dataset_statistics)

    graph = groups.add_parser("graph", help="build and inspect graphs").add_subparsers(
        dest="verb", required=True
    )
    gcreate = graph.add_parser("create", help="graph recipe + dataset grid -> graph.pt")
    gcreate.add_argument("config", help="graph recipe YAML (configs/training/graph/...)")
    gcreate.add_argument(
        "--dataset",
        required=True,
        action="append",
        help="dataset (.zarr), .npz of coordinates, or grid (o96); repeat as NAME=PATH (or "
        "NAME='{dataset: PATH, thinning: 2}') for one data node set per dataset",
    )
    gcreate.add_argument("out", help="graph file to write (.pt)")
    gcreate.set_defaults(run=_graph_create)
    ginspect = graph.add_parser("inspect", help="counts, degrees, unconnected nodes, lengths")
    ginspect.add_argument("graph")
    ginspect.add_argument("--bins", type=int, default=10, help="edge-length histogram bins")
    ginspect.set_defaults(run=_graph_inspect)
    gplot = graph.add_parser("plot", help="PNG of each edge set's nodes and edges on a map")
    gplot.add_argument("graph")
    gplot.add_argument("--out", help="PNG to write (default: the graph file's name, .png)")
    gplot.add_argument("--max-edges", type=int, default=20000, help="edges drawn per panel")
    gplot.set_defaults(run=_graph_plot)

    config = groups.add_parser("config", help="training configs").add_subparsers(
        dest="verb", required=True
    )
    validate = config.add_parser("validate", help="compose, check and pre-flight a config")
    validate.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model.hidden=128")
    validate.add_argument("--config-dir", default="configs/training")
    validate.add_argument("--config-name", default="config")
    validate.add_argument("--out", required=True, help="where to write the resolved config")
    validate.add_argument(
        "--preflight",
        action="store_true",
        help="also build data, graph and model and run one sample forward and backward "
        "(parameter count, peak memory estimate)",
    )
    validate.set_defaults(run=_config_validate)
    generate = config.add_parser("generate", help="copy the templates into a folder to edit")
    generate.add_argument("dir", nargs="?", default="squall-configs")
    generate.add_argument("--force", action="store_true")
    generate.set_defaults(run=_config_generate)
    dump = config.add_parser("dump", help="print the composed, validated config as YAML")
    dump.add_argument("overrides", nargs="*")
    dump.add_argument("--config-dir", default="configs/training")
    dump.add_argument("--config-name", default="config")
    dump.set_defaults(run=_config_dump)
    schema = config.add_parser("schema", help="print the config's JSON schema (for editors)")
    schema.set_defaults(run=_config_schema)

    train = groups.add_parser("train", help="train from a resolved config")
    train.add_argument("resolved")
    train.add_argument(
        "--resume",
        help="continue exactly from a checkpoint; 'auto': from this run's last.ckpt if the run "
        "of this same config was interrupted (wall time) or killed, else start afresh; 'last': "
        "from this run's last.ckpt, if any; or from an MLflow run id",
    )
    train.add_argument(
        "--fork", action="store_true", help="with --resume: continue as a new MLflow run"
    )
    train.add_argument("--allow-lineage-mismatch", action="store_true")
    train.set_defaults(run=_train)

    mlflow = groups.add_parser("mlflow", help="MLflow stores").add_subparsers(
        dest="verb", required=True
    )
    sync = mlflow.add_parser("sync", help="copy runs logged offline to another store")
    sync.add_argument("--from", dest="source", default="sqlite:///results/mlflow.db")
    sync.add_argument("--to", dest="target", required=True, help="e.g. http://server:5000")
    sync.add_argument("--experiment", help="only this experiment")
    sync.set_defaults(run=_mlflow_sync)

    export = groups.add_parser(
        "export", help="checkpoint -> pickle-free model directory; `export inspect DIR`"
    )
    export.add_argument("checkpoint", help="a training checkpoint, or the word 'inspect'")
    export.add_argument("out", help="model directory to write (or to inspect)")
    export.add_argument("--graph", help="the training graph, if it moved")
    export.add_argument("--allow-lineage-mismatch", action="store_true")
    export.add_argument("--zip", action="store_true", help="also write OUT.zip (one file)")
    export.set_defaults(run=_export)

    predict = groups.add_parser("predict", help="forecasts from an exported model to zarr")
    predict.add_argument("model", help="model directory or zip (squall export)")
    predict.add_argument("--dataset", required=True)
    predict.add_argument("--start", required=True, help="first initial time")
    predict.add_argument("--end", required=True, help="last initial time")
    predict.add_argument(
        "--lead-time",
        default="24h",
        help="forecasters; an interpolator fills its target hours, an autoencoder reconstructs",
    )
    predict.add_argument("--out", required=True, help="forecasts zarr to write")
    predict.add_argument("--batch-size", type=int, default=8)
    predict.add_argument("--device", help="cpu or cuda (default: cuda when there is one)")
    predict.add_argument("--members", type=int, help="ensemble members (default: the data's)")
    predict.set_defaults(run=_predict)

    evaluate = groups.add_parser("evaluate", help="score forecasts against the truth")
    evaluate.add_argument("forecasts", help="forecasts zarr (squall predict)")
    evaluate.add_argument("--truth", required=True, help="dataset holding the verifying data")
    evaluate.add_argument("--climatology-start", required=True, help="training split start")
    evaluate.add_argument("--climatology-end", required=True, help="training split end")
    evaluate.add_argument(
        "--baseline",
        action="append",
        help="another forecast to score alike: NAME=PATH (repeatable)",
    )
    evaluate.add_argument("--out", required=True, help="directory for scores and plots")
    evaluate.set_defaults(run=_evaluate)
    downscaling = groups.add_parser(
        "evaluate-downscaling",
        help="score a downscaler on the fine grid against interpolation of its coarse input",
    )
    downscaling.add_argument("model", help="exported downscaler (squall export)")
    multi_help = "NAME=PATH (or NAME='{dataset: PATH, thinning: 2}') of each dataset the model uses"
    downscaling.add_argument("--dataset", action="append", required=True, help=multi_help)
    downscaling.add_argument("--start", required=True, help="first date scored (test split)")
    downscaling.add_argument("--end", required=True, help="last date scored")
    downscaling.add_argument("--out", required=True, help="directory for scores and plots")
    downscaling.set_defaults(run=_evaluate_downscaling)
    multi_predict = groups.add_parser(
        "predict-multi-dataset",
        help="forecasts of a model on several datasets: OUT/<dataset>.zarr per output dataset",
    )
    multi_predict.add_argument("model", help="exported model (squall export)")
    multi_predict.add_argument("--dataset", action="append", required=True, help=multi_help)
    multi_predict.add_argument("--start", required=True, help="first initial time")
    multi_predict.add_argument("--end", required=True, help="last initial time")
    multi_predict.add_argument("--lead-time", default="24h")
    multi_predict.add_argument("--out", required=True, help="directory of forecasts zarrs")
    multi_predict.add_argument("--batch-size", type=int, default=8)
    multi_predict.add_argument("--device", help="cpu or cuda (default: cuda when there is one)")
    multi_predict.set_defaults(run=_predict_multi_dataset)
    multi_evaluate = groups.add_parser(
        "evaluate-multi-dataset",
        help="score each dataset's forecasts against its truth; one table with a dataset column",
    )
    multi_evaluate.add_argument("forecasts", help="directory from predict-multi-dataset")
    multi_evaluate.add_argument("--truth", action="append", required=True, help=multi_help)
    multi_evaluate.add_argument("--climatology-start", required=True, help="training split start")
    multi_evaluate.add_argument("--climatology-end", required=True, help="training split end")
    multi_evaluate.add_argument("--out", required=True, help="directory for scores and plots")
    multi_evaluate.set_defaults(run=_evaluate_multi_dataset)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (ValueError, FileNotFoundError, FileExistsError, LookupError) as error:
        # User errors: the message says what to do; no traceback unless asked for.
        if os.environ.get("SQUALL_TRACEBACK"):
            raise
        print(f"squall: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
