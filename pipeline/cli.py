"""The curation side of the ``winnow`` command: curate, report, quality, tokenizer and shards.

``winnow/cli.py`` builds the command from this module and from ``trainer/cli.py``. Each
subcommand imports its heavy modules only when it runs, so ``winnow --help`` loads neither Beam
nor torch."""

from __future__ import annotations

import argparse
import os
import sys
import traceback

CURATE_EPILOG = """\
Any option not listed above is passed to Apache Beam as a pipeline option, for example:
  --runner DirectRunner (default) | DataflowRunner | FlinkRunner | SparkRunner
  --direct_running_mode multi_processing --direct_num_workers 2   (local, all cores)
  --project P --region R --temp_location gs://B/tmp --setup_file ./pyproject.toml  (Dataflow)
Flags that are neither curate's nor Beam's are refused. See the README for the config
reference and the output layout."""

# argparse would show INPUT and --output as optional: --print-config needs neither.
CURATE_USAGE = """\
%(prog)s INPUT [INPUT ...] --output DIR [--config FILE] [--overwrite]
              [--no-progress | --progress-every SECONDS] [--no-memory-check] [--verbose]
              [Beam options]
       %(prog)s --print-config [--config FILE]"""


def add_curation_commands(commands) -> None:
    """Add curate, report, quality, tokenizer and shards to the ``winnow`` command's parser."""
    _add_curate(commands)
    _add_report(commands)
    _add_quality(commands)
    _add_tokenizer(commands)
    _add_shards(commands)


def _add_curate(commands) -> None:
    curate = commands.add_parser(
        "curate", help="run the curation pipeline",
        description="Read documents, run the curation stages and write kept/, removed/, "
                    "quarantined/ and report.json into --output.",
        usage=CURATE_USAGE, epilog=CURATE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
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
    curate.add_argument("--no-progress", action="store_true",
                        help="show no progress while a local run runs (by default: a status "
                             "line on a terminal, else a line every --progress-every)")
    curate.add_argument("--progress-every", type=float, default=30.0, metavar="SECONDS",
                        help="seconds between progress lines when stderr is not a terminal "
                             "(default: %(default)g)")
    curate.add_argument("--verbose", action="store_true",
                        help="also show Beam's start-up noise (raw worker log dumps, "
                             "'apitools not found')")
    curate.add_argument("--no-memory-check", dest="memory_check", action="store_false",
                        help="run locally even when the estimated peak memory exceeds the "
                             "available memory (by default such a run is refused)")
    curate.set_defaults(run=_run_curate, passes_beam_options=True)


def _add_report(commands) -> None:
    report = commands.add_parser(
        "report", help="show what a run did and why",
        description="Print every figure of a curation run as tables: the funnel by stage, "
                    "removals by stage and reason, quality scores, language mix, document "
                    "lengths before and after, near-duplicate clusters, PII counts, shard "
                    "counts, configuration and timings. Works on local and gs:// run folders "
                    "and on runs that stopped part way (it says what is missing). Document "
                    "text is always shown with its PII redacted.")
    report.add_argument("run_dir", metavar="DIR",
                        help="a run folder written by winnow curate (local or gs://)")
    report.add_argument("--json", action="store_true",
                        help="print report.json (example texts redacted for PII again)")
    report.add_argument("--html", metavar="FILE",
                        help="write the report (with --compare, the comparison) as one "
                             "self-contained HTML file with plots, instead of printing it")
    report.add_argument("--reason", metavar="NAME",
                        help="print documents removed (or quarantined) for this reason")
    report.add_argument("-n", type=int, default=5,
                        help="documents to print with --reason (default: 5)")
    report.add_argument("--compare", metavar="OTHER_DIR",
                        help="compare with another run: counts side by side with deltas, and "
                             "the config keys that differ")
    report.set_defaults(run=_run_report)


def _add_quality(commands) -> None:
    from winnow.filters.quality import TrainSettings

    quality = commands.add_parser("quality", help="train the fastText quality classifier")
    actions = quality.add_subparsers(dest="action", required=True, metavar="ACTION")
    train = actions.add_parser(
        "train", help="train a classifier from good and bad example documents",
        description="Train a fastText classifier (__label__hq vs __label__lq) on documents read "
                    "like curate's inputs and normalized the same way; hold out a validation "
                    "split and print its precision, recall and accuracy at the default "
                    "threshold, each class's score distribution and the threshold that reaches "
                    "--target-precision; write MODEL and MODEL.metrics.json. A model no better "
                    "than chance, or whose scores barely spread, is refused (exit 2, nothing "
                    "written to MODEL). Use MODEL as quality.model in the curate config.")
    train.add_argument("--positive", nargs="+", required=True, metavar="FILE",
                       help="high-quality examples (files, folders or globs; any curate format)")
    train.add_argument("--negative", nargs="+", required=True, metavar="FILE",
                       help="low-quality examples, e.g. raw crawl")
    train.add_argument("--output", required=True, metavar="MODEL",
                       help="model file to write (local; copy it to gs:// for curate on "
                            "Dataflow)")
    train.add_argument("--text-field", default="text", help="JSONL/Parquet text field")
    train.add_argument("--allow-weak", action="store_true",
                       help="save a model that fails the chance or score-spread checks anyway "
                            "(its metrics list why it is weak)")
    _add_dataclass_options(train, TrainSettings)
    train.set_defaults(run=_run_quality_train)


def _run_quality_train(args, _extra: list[str]) -> int:
    from winnow.filters.quality import TrainSettings, train_quality_model
    from winnow.pipeline.curate import CurationError
    from winnow.pipeline.training_data import normalized_texts

    settings = _dataclass_from_args(TrainSettings, args)
    try:
        positive = normalized_texts(args.positive, args.text_field)
        negative = normalized_texts(args.negative, args.text_field)
        metrics = train_quality_model(positive, negative, args.output, settings,
                                      allow_weak=args.allow_weak)
    except (CurationError, ValueError) as error:
        return _failed(args, f"winnow quality train: {error}")
    print(_quality_summary(metrics))
    if metrics["weak"]:
        print(f"winnow quality train: warning: saved a weak model (--allow-weak): "
              f"{'; '.join(metrics['weak'])}", file=sys.stderr)
    print(f"wrote {args.output} and {args.output}.metrics.json")
    return 0


def _quality_summary(metrics: dict) -> str:
    """The validation figures of a trained quality model as a few lines of text (all of them
    are in MODEL.metrics.json)."""
    validation, scores = metrics["validation"], metrics["scores"]
    lines = [f"validation split ({validation['hq']} hq, {validation['lq']} lq) at threshold "
             f"{metrics['threshold']:g}: accuracy {metrics['accuracy']:.3f}, precision "
             f"{metrics['precision']:.3f}, recall {metrics['recall']:.3f}, F1 {metrics['f1']:.3f}",
             "P(hq)    mean   " + "".join(f"p{float(q) * 100:<6.0f}" for q in
                                          scores["hq"]["quantiles"]) +
             "documents per 0.1 from 0 to 1"]
    for label in ("hq", "lq"):
        distribution = scores[label]
        lines.append(f"  {label}    {distribution['mean']:.3f}  " +
                     "".join(f"{value:<7.3f}" for value in distribution["quantiles"].values()) +
                     " ".join(str(count) for count in distribution["histogram"]["counts"]))
    chosen = metrics["threshold_for_precision"]
    if chosen["threshold"] is None:
        lines.append(f"no threshold reaches precision {chosen['target_precision']:g} on the "
                     f"validation split")
    else:
        lines.append(f"threshold for precision {chosen['target_precision']:g}: "
                     f"{chosen['threshold']:.3f} (keeps {chosen['hq_kept']:.1%} of hq and "
                     f"{chosen['lq_kept']:.1%} of lq of the validation split)")
    return "\n".join(lines)


def _add_tokenizer(commands) -> None:
    from winnow.filters.tokenizer import TokenizerConfig

    tokenizer = commands.add_parser("tokenizer", help="train a SentencePiece tokenizer")
    actions = tokenizer.add_subparsers(dest="action", required=True, metavar="ACTION")
    train = actions.add_parser(
        "train", help="train a tokenizer on a seeded sample of documents",
        description="Train a SentencePiece model on a seeded sample of documents (typically a "
                    "run's kept/ folder), with [PAD] [UNK] [CLS] [SEP] [MASK] at ids 0-4, the PII "
                    "placeholders as single pieces and byte fallback. Writes PREFIX.model and "
                    "PREFIX.vocab. Use PREFIX.model as tokenizer.model in the curate config.")
    train.add_argument("inputs", nargs="+", metavar="INPUT",
                       help="files, folders or globs in any curate input format")
    train.add_argument("--output", required=True, metavar="PREFIX",
                       help="output path prefix (local or gs://)")
    train.add_argument("--text-field", default="text", help="JSONL/Parquet text field")
    _add_dataclass_options(train, TokenizerConfig, skip=("model",))
    train.set_defaults(run=_run_tokenizer_train)


def _add_dataclass_options(parser, cls: type, skip: tuple[str, ...] = ()) -> None:
    """One --option per field of a config dataclass, documented by the field's docstring."""
    import dataclasses

    from winnow.schemas.typed_config import field_docstrings

    docs = field_docstrings(cls)
    for setting in dataclasses.fields(cls):
        if setting.name in skip:
            continue
        parser.add_argument(f"--{setting.name.replace('_', '-')}", type=type(setting.default),
                            default=setting.default, dest=setting.name,
                            help=" ".join(docs[setting.name].split()) + " (default: %(default)s)")


def _dataclass_from_args(cls, args):
    import dataclasses

    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
                  if hasattr(args, f.name)})


def _run_tokenizer_train(args, _extra: list[str]) -> int:
    import heapq

    from winnow.filters.sentences import SentencesConfig
    from winnow.filters.tokenizer import Tokenizer, TokenizerConfig, sample_rank, train_tokenizer
    from winnow.pipeline.curate import CurationError
    from winnow.pipeline.shards import training_sentences
    from winnow.pipeline.training_data import normalized_documents
    from winnow.pipeline.writers import write_atomically

    config = _dataclass_from_args(TokenizerConfig, args)
    problems = config.errors()
    if problems:
        print(f"winnow tokenizer train: {'; '.join(problems)}", file=sys.stderr)
        return 2
    try:
        ranked = ((sample_rank(config.seed, doc.id), doc.id,
                   doc.text[:config.sample_chars_per_document])
                  for doc in normalized_documents(args.inputs, args.text_field))
        sample = heapq.nsmallest(config.sample_documents, ranked)
        if not sample:
            raise ValueError("no documents to train on")
        model = train_tokenizer(training_sentences([t for _, _, t in sample], SentencesConfig()),
                                config)
    except (CurationError, ValueError, RuntimeError) as error:
        return _failed(args, f"winnow tokenizer train: {error}")
    processor = Tokenizer(model).processor
    vocab = "".join(f"{processor.id_to_piece(token_id)}\t{processor.get_score(token_id)}\n"
                    for token_id in range(processor.get_piece_size()))
    write_atomically(f"{args.output}.model", model)  # local or any Beam filesystem (gs://)
    write_atomically(f"{args.output}.vocab", vocab.encode("utf-8"))
    print(f"trained on {len(sample):,} documents: {processor.get_piece_size():,} pieces; "
          f"wrote {args.output}.model and {args.output}.vocab")
    return 0


def _add_shards(commands) -> None:
    shards = commands.add_parser("shards", help="check and inspect token shards")
    actions = shards.add_subparsers(dest="action", required=True, metavar="ACTION")
    verify = actions.add_parser(
        "verify", help="check checksums, bounds, token ids and labels",
        description="Check every file of a shard folder against its manifest: sha256 sums, "
                    "sizes, index bounds, token ids below the vocabulary size, labels. Exits "
                    "non-zero with one line per problem, naming the file.")
    show = actions.add_parser(
        "show", help="print decoded examples (and where they came from)",
        description="Print decoded examples of a shard folder; with --provenance, also the "
                    "documents segment A and segment B came from: id, input file and record "
                    "position in it, and, when DIR is a run folder, the input record's other "
                    "fields from kept/ (licence, URL, ...), e.g. 'winnow shards show RUN "
                    "--start 1234 -n 1 --provenance'.")
    show.add_argument("-n", type=int, default=5, help="number of examples (default: 5)")
    show.add_argument("--start", type=int, default=0, help="first example index (default: 0)")
    show.add_argument("--provenance", action="store_true",
                      help="also print the refs (id, input_file, input_position) of the "
                           "documents of A and of B, with their input fields when DIR is a run "
                           "folder")
    show.add_argument("--json", action="store_true",
                      help="one JSON object per line: segment_a, segment_b, label, objective "
                           "(and document_a, document_b, documents with --provenance; an mlm "
                           "example is all segment_a, label 0)")
    stats = actions.add_parser("stats", help="counts, length histogram, label balance",
                               description="Print counts, the length histogram and the label "
                                           "balance of a shard folder, as tables (--json: "
                                           "one JSON object).")
    stats.add_argument("--json", action="store_true",
                       help="print the figures as one JSON object instead of tables")
    for action in (verify, show, stats):
        action.add_argument("shards_dir", metavar="DIR",
                            help="a shard folder (RUN/shards) or a run folder holding shards/")
        action.set_defaults(run=_run_shards)


def _run_shards(args, _extra: list[str]) -> int:
    import json

    from winnow.pipeline.report_text import format_shard_stats
    from winnow.schemas.shard_format import PACKED_OBJECTIVE
    from winnow.schemas.shard_reader import (
        decode_examples,
        read_manifest,
        shard_stats,
        shards_folder,
    )
    from winnow.schemas.shard_verify import verify_shards

    folder = shards_folder(args.shards_dir)
    if args.action == "verify":
        problems = verify_shards(folder)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            return 1
        empty = read_manifest(folder).examples == 0
        print(f"{folder}: ok" + (" (an empty shard set: no examples)" if empty else ""))
        return 0
    try:
        if args.action == "stats":
            stats = shard_stats(folder)
            print(json.dumps(stats, indent=2) if args.json else format_shard_stats(stats))
            return 0
        examples = list(decode_examples(folder, args.n, args.start, args.provenance))
        if args.provenance:
            _add_input_fields(examples, args.shards_dir)
        for example in examples:
            if args.json:
                print(json.dumps(example, ensure_ascii=False))
                continue
            if example["objective"] == PACKED_OBJECTIVE:  # one packed sequence, no pair
                print(f"#{example['index']} ({example['objective']})\n"
                      f"  text: {example['segment_a']}")
            else:
                print(f"#{example['index']} label={example['label']} ({example['objective']})\n"
                      f"  A: {example['segment_a']}\n  B: {example['segment_b']}")
            if args.provenance and example["objective"] == PACKED_OBJECTIVE:
                for document in example["documents"]:
                    print(f"  from: {json.dumps(document, ensure_ascii=False)}")
            elif args.provenance:
                for segment in ("a", "b"):
                    print(f"  {segment.upper()} from: "
                          f"{json.dumps(example['document_' + segment], ensure_ascii=False)}")
    except (OSError, ValueError) as error:
        return _failed(args, f"winnow shards {args.action}: {error}")
    return 0


def _add_input_fields(examples: list[dict], shards_dir: str) -> None:
    """Add each document's input fields (licence, URL, ...) from kept/ to the examples'
    ``document_a`` and ``document_b`` when ``shards_dir`` is a run folder (a bare shards folder
    has no kept/), looking every document up in one read of kept/."""
    from winnow.pipeline.provenance import kept_records
    from winnow.pipeline.run_folder import parquet_files
    from winnow.schemas.shard_format import DocumentRef

    if not parquet_files(shards_dir, "kept"):
        return
    documents = [document for example in examples for document in (
        example["document_a"], example["document_b"], *example["documents"])]
    records = kept_records(shards_dir, {DocumentRef(**document) for document in documents})
    for document in documents:
        document["fields"] = records[DocumentRef(**document)]["fields"]


def _run_curate(args, beam_args: list[str]) -> int:
    from winnow.pipeline.config import ConfigError, config_to_yaml, load_config
    from winnow.pipeline.curate import CurationError, run_curation
    from winnow.pipeline.progress import ProgressSettings
    from winnow.pipeline.report_text import format_report

    try:
        config = load_config(args.config)
    except ConfigError as error:
        return _failed(args, f"winnow curate: {error}")
    if args.print_config:
        sys.stdout.write(config_to_yaml(config))
        return 0
    if not args.inputs or not args.output:
        print("winnow curate: INPUT and --output are required", file=sys.stderr)
        return 2
    progress = ProgressSettings(not args.no_progress, args.progress_every)
    try:
        report = run_curation(args.inputs, args.output, config, beam_args, args.overwrite,
                              progress, args.memory_check)
    except CurationError as error:
        return _failed(args, f"winnow curate: {error}")
    if "dry_run_steps" in report:
        print(f"dry run: built the job graph ({report['dry_run_steps']} steps), nothing was run")
    elif report:
        print(format_report(report))
        print(f"\nwrote {args.output}")
    return 0


def _failed(args, message: str) -> int:
    """Exit code 2 after ``message``, one line; with --debug the traceback of the error being
    handled comes first."""
    if getattr(args, "debug", False):
        traceback.print_exc()
    print(message, file=sys.stderr)
    return 2


def _run_report(args, _extra: list[str]) -> int:
    import json

    from winnow.pipeline.report_text import (
        display_report,
        format_comparison,
        format_examples,
        format_report,
    )
    from winnow.pipeline.run_folder import RunNotFound, load_run, removed_examples

    if args.n < 1:
        print("winnow report: -n must be at least 1", file=sys.stderr)
        return 2
    try:
        view = load_run(args.run_dir)
        other = load_run(args.compare) if args.compare else None
        if args.reason:
            examples = removed_examples(args.run_dir, args.reason, args.n)
            if not examples:
                documents = view.report["documents"]
                known = sorted(set(documents["removed"]) | set(documents["quarantined"]))
                print(f"winnow report: no document was removed or quarantined for "
                      f"{args.reason!r} in {args.run_dir}; reasons in this run: "
                      f"{', '.join(known) or 'none'}", file=sys.stderr)
                return 2
            print(format_examples(view, args.reason, examples, args.n))
        elif args.html and not args.json:
            pass  # the page replaces the text report: only where it went is printed, below
        elif other is not None:
            print(format_comparison(view, other))
        elif args.json:
            shown = display_report(view.report)
            print(json.dumps(shown, indent=2, ensure_ascii=False))
            for warning in view.warnings:  # stdout stays parseable JSON
                print(f"warning: {warning}", file=sys.stderr)
        else:
            print(format_report(view.report, view))
        if args.html:
            from winnow.pipeline.html_report import write_html

            write_html(view, args.html, other)
            where = args.html if "://" in args.html else os.path.abspath(args.html)
            what = "comparison" if other is not None else "report"
            print(f"wrote the HTML {what} to {where}",
                  file=sys.stderr if args.json else sys.stdout)
    except RunNotFound as error:
        return _failed(args, f"winnow report: {error}")
    except (OSError, ValueError) as error:
        return _failed(args, f"winnow report: cannot read the run in {args.run_dir}: {error}")
    return 0
