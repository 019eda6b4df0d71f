"""The ``winnow`` command. Each subcommand imports its heavy modules only when it runs, so
``winnow pretrain`` never loads Beam and ``winnow curate`` never loads torch."""

from __future__ import annotations

import argparse
import logging
import sys

CURATE_EPILOG = """\
Any option not listed above is passed to Apache Beam as a pipeline option, for example:
  --runner DirectRunner (default) | DataflowRunner | FlinkRunner | SparkRunner
  --direct_running_mode multi_processing --direct_num_workers 2   (local, all cores)
  --project P --region R --temp_location gs://B/tmp --setup_file ./pyproject.toml  (Dataflow)
See the README for the config reference and the output layout."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="winnow",
        description="Curate raw text into a clean pretraining corpus.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_curate(commands)
    _add_report(commands)
    _add_quality(commands)
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "curate":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    return args.run(args, extra)


def _add_curate(commands) -> None:
    curate = commands.add_parser(
        "curate", help="run the curation pipeline",
        description="Read documents, run the curation stages and write kept/, removed/, "
                    "quarantined/ and report.json into --output.",
        epilog=CURATE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    curate.add_argument("inputs", nargs="*", metavar="INPUT",
                        help="files, folders or globs (local or any Beam filesystem, e.g. "
                             "gs://bucket/crawl/*.jsonl.zst): JSONL (.jsonl, .jsonl.gz, "
                             ".jsonl.zst), Parquet, or plain text (one document per file)")
    curate.add_argument("--output", metavar="DIR", help="run folder to write (local or gs://)")
    curate.add_argument("--config", metavar="FILE",
                        help="YAML config naming only what differs from the defaults")
    curate.add_argument("--print-config", action="store_true",
                        help="print the full effective config (defaults merged with --config) "
                             "as YAML and exit")
    curate.add_argument("--overwrite", action="store_true",
                        help="replace an earlier run in --output instead of refusing")
    curate.set_defaults(run=_run_curate)


def _add_report(commands) -> None:
    report = commands.add_parser(
        "report", help="summarize a run folder",
        description="Print the funnel by stage, removals by reason, quarantined records and "
                    "PII counts of a finished curation run.")
    report.add_argument("run_dir", metavar="DIR", help="a run folder written by winnow curate")
    report.add_argument("--json", action="store_true", help="print report.json as it is")
    report.set_defaults(run=_run_report)


def _add_quality(commands) -> None:
    import dataclasses

    from filters.quality import TrainSettings
    from schemas.config import field_docstrings

    quality = commands.add_parser("quality", help="train the fastText quality classifier")
    actions = quality.add_subparsers(dest="action", required=True, metavar="ACTION")
    train = actions.add_parser(
        "train", help="train a classifier from good and bad example documents",
        description="Train a fastText classifier (__label__hq vs __label__lq) on documents read "
                    "like curate's inputs and normalized the same way; hold out a validation "
                    "split, print its precision, recall and accuracy, and write MODEL and "
                    "MODEL.metrics.json. Use MODEL as quality.model in the curate config.")
    train.add_argument("--positive", nargs="+", required=True, metavar="FILE",
                       help="high-quality examples (files, folders or globs; any curate format)")
    train.add_argument("--negative", nargs="+", required=True, metavar="FILE",
                       help="low-quality examples, e.g. raw crawl")
    train.add_argument("--output", required=True, metavar="MODEL", help="model file to write")
    train.add_argument("--text-field", default="text", help="JSONL/Parquet text field")
    docs = field_docstrings(TrainSettings)
    for setting in dataclasses.fields(TrainSettings):
        train.add_argument(f"--{setting.name.replace('_', '-')}", type=type(setting.default),
                           default=setting.default, help=" ".join(docs[setting.name].split())
                           + " (default: %(default)s)")
    train.set_defaults(run=_run_quality_train)


def _run_quality_train(args, _extra: list[str]) -> int:
    import dataclasses
    import json

    from filters.quality import TrainSettings, train_quality_model
    from pipeline.curate import CurationError
    from pipeline.training_data import normalized_texts

    settings = TrainSettings(**{f.name: getattr(args, f.name)
                                for f in dataclasses.fields(TrainSettings)})
    try:
        positive = normalized_texts(args.positive, args.text_field)
        negative = normalized_texts(args.negative, args.text_field)
        metrics = train_quality_model(positive, negative, args.output, settings)
    except (CurationError, ValueError) as error:
        print(f"winnow quality train: {error}", file=sys.stderr)
        return 2
    shown = {key: metrics[key] for key in ("precision", "recall", "f1", "accuracy")}
    print(json.dumps({**shown, "validation": metrics["validation"]}, indent=2))
    print(f"wrote {args.output} and {args.output}.metrics.json")
    return 0


def _run_curate(args, beam_args: list[str]) -> int:
    from pipeline.curate import CurationError, run_curation
    from pipeline.report import format_report
    from schemas.config import ConfigError, config_to_yaml, load_config

    try:
        config = load_config(args.config)
    except ConfigError as error:
        print(f"winnow curate: {error}", file=sys.stderr)
        return 2
    if args.print_config:
        sys.stdout.write(config_to_yaml(config))
        return 0
    if not args.inputs or not args.output:
        print("winnow curate: INPUT and --output are required", file=sys.stderr)
        return 2
    try:
        report = run_curation(args.inputs, args.output, config, beam_args, args.overwrite)
    except CurationError as error:
        print(f"winnow curate: {error}", file=sys.stderr)
        return 2
    if report:
        print(format_report(report))
        print(f"\nwrote {args.output}")
    return 0


def _run_report(args, _extra: list[str]) -> int:
    import json

    from pipeline.report import format_report, read_report

    try:
        report = read_report(args.run_dir)
    except (OSError, ValueError) as error:
        print(f"winnow report: cannot read the report of {args.run_dir}: {error}",
              file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
