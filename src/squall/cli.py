"""`squall <group> <verb>`: parses arguments and calls one library function per command."""

from __future__ import annotations

import argparse
import os
import sys


def _dataset_create(args: argparse.Namespace) -> None:
    from squall.data.recipes import create_dataset

    create_dataset(args.recipe, args.out)
    print(f"wrote {args.out}")


def _dataset_statistics(args: argparse.Namespace) -> None:
    from squall.data.statistics import create_statistics_file

    create_statistics_file(args.dataset, args.out, args.start, args.end, args.tendency)
    print(f"wrote {args.out}")


def _graph_create(args: argparse.Namespace) -> None:
    from squall.graphs.from_dataset import create_graph_for_dataset

    create_graph_for_dataset(args.dataset, args.out, args.recipe)
    print(f"wrote {args.out}")


def _graph_inspect(args: argparse.Namespace) -> None:
    from squall.graphs.io import graph_summary, load_graph

    graph, info = load_graph(args.graph)
    print(graph_summary(graph))
    print(f"coordinates hash: {info.get('coordinates_hash')}; config: {info.get('config')}")


def _config_validate(args: argparse.Namespace) -> None:
    from squall.training.preflight import validate_to_file

    validate_to_file(args.config_name, args.overrides, args.config_dir, args.out)
    print(f"config '{args.config_name}' is valid; resolved config written to {args.out}")


def _train(args: argparse.Namespace) -> None:
    from squall.training.trainer import train_from_file

    best = train_from_file(args.resolved, args.allow_lineage_mismatch, args.resume)
    print(f"best checkpoint: {best}")


def _export(args: argparse.Namespace) -> None:
    from squall.export.artifact import summary
    from squall.export.from_checkpoint import export_checkpoint

    if args.checkpoint == "inspect":
        print(summary(args.out))
        return
    export_checkpoint(args.checkpoint, args.out, args.graph, args.allow_lineage_mismatch)
    print(summary(args.out))


def _evaluate(args: argparse.Namespace) -> None:
    from squall.evaluation.evaluate import evaluate

    scores = evaluate(
        args.model,
        args.dataset,
        args.start,
        args.end,
        _hours(args.lead_time),
        (args.climatology_start, args.climatology_end),
        args.out,
    )
    print(
        scores.pivot_table(
            index=["variable", "lead_time_hours"], columns="forecast", values="rmse"
        ).to_string()
    )


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
    create.set_defaults(run=_dataset_create)
    stats = dataset.add_parser("statistics", help="statistics over the training period")
    stats.add_argument("dataset")
    stats.add_argument("out")
    stats.add_argument("--start", required=True, help="first date of the training period")
    stats.add_argument("--end", required=True, help="last date of the training period")
    stats.add_argument(
        "--tendency",
        action="append",
        default=None,
        help="tendency interval, e.g. 6h (repeatable; default: 6h)",
    )
    stats.set_defaults(run=_dataset_statistics)

    graph = groups.add_parser("graph", help="build and inspect graphs").add_subparsers(
        dest="verb", required=True
    )
    gcreate = graph.add_parser("create", help="dataset grid + graph recipe -> graph.pt")
    gcreate.add_argument("dataset")
    gcreate.add_argument("out")
    gcreate.add_argument("--recipe", help="graph recipe YAML (configs/graphs/...)")
    gcreate.set_defaults(run=_graph_create)
    ginspect = graph.add_parser("inspect", help="print node and edge counts")
    ginspect.add_argument("graph")
    ginspect.set_defaults(run=_graph_inspect)

    config = groups.add_parser("config", help="training configs").add_subparsers(
        dest="verb", required=True
    )
    validate = config.add_parser("validate", help="compose, check and pre-flight a config")
    validate.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model.hidden=128")
    validate.add_argument("--config-dir", default="configs/training")
    validate.add_argument("--config-name", default="config")
    validate.add_argument("--out", required=True, help="where to write the resolved config")
    validate.set_defaults(run=_config_validate)

    train = groups.add_parser("train", help="train from a resolved config")
    train.add_argument("resolved")
    train.add_argument("--resume", help="checkpoint to resume from")
    train.add_argument("--allow-lineage-mismatch", action="store_true")
    train.set_defaults(run=_train)

    export = groups.add_parser(
        "export", help="checkpoint -> pickle-free model directory; `export inspect DIR`"
    )
    export.add_argument("checkpoint", help="a training checkpoint, or the word 'inspect'")
    export.add_argument("out", help="model directory to write (or to inspect)")
    export.add_argument("--graph", help="the training graph, if it moved")
    export.add_argument("--allow-lineage-mismatch", action="store_true")
    export.set_defaults(run=_export)

    evaluate = groups.add_parser("evaluate", help="score a model against persistence/climatology")
    evaluate.add_argument("model")
    evaluate.add_argument("--dataset", required=True)
    evaluate.add_argument("--start", required=True)
    evaluate.add_argument("--end", required=True)
    evaluate.add_argument("--lead-time", default="24h")
    evaluate.add_argument("--climatology-start", required=True)
    evaluate.add_argument("--climatology-end", required=True)
    evaluate.add_argument("--out", required=True)
    evaluate.set_defaults(run=_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (ValueError, FileNotFoundError, LookupError) as error:
        # User errors: the message says what to do; no traceback unless asked for.
        if os.environ.get("SQUALL_TRACEBACK"):
            raise
        print(f"squall: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
