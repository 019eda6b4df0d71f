"""``winnow curate``: build and run the curation pipeline.

    read -> the stages of pipeline.stage_list, in order -> kept/ -> shards/
              \\_____ removed/ (stage, reason) _____/
    read -> quarantined/ (records that are not documents)
    everything -> report.json

The stages, their order and why it is so are in ``pipeline.stage_list``; each stage transform
returns ``kept``, ``removed`` and ``stats``. This module reads the inputs, chains the stages,
writes the run folder and runs the pipeline.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import sys
import time
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

from winnow.filters.pii import PiiConfig, PiiRedactor
from winnow.filters.pii_names import NameRedactor
from winnow.filters.quality import load_quality_model
from winnow.pipeline.config import WinnowConfig
from winnow.pipeline.dataset_card import CARD_FILE, is_dataset_card, write_dataset_card
from winnow.pipeline.filesystem import dangling_links, open_binary
from winnow.pipeline.local_workers import WorkerDied, run_watching_workers, watching_possible
from winnow.pipeline.memory import check_local_memory, map_large_blocks, release_idle_stages
from winnow.pipeline.near_dedup import CLUSTERS
from winnow.pipeline.progress import ProgressSettings, dataflow_job_lines, local_progress
from winnow.pipeline.readers import carried_name
from winnow.pipeline.report import BuildReport, finish_report
from winnow.pipeline.shards import BuildShards
from winnow.pipeline.stage_list import STAGES, stage_order
from winnow.pipeline.transforms import NEAR_THRESHOLD, QUARANTINED, REMOVED, STATS, ReadInputs
from winnow.pipeline.writers import (
    UnifyFieldTypes,
    WriteParquetShards,
    kept_row,
    quarantined_row,
    removed_row,
)
from winnow.schemas.records import (
    KEPT_SCHEMA,
    QUARANTINED_SCHEMA,
    REMOVED_SCHEMA,
    Quarantined,
    Removed,
)
from winnow.schemas.report import REPORT_FILE

OUTPUT_FOLDERS = ("kept", "removed", "quarantined", "shards", "tokenizer")


class CurationError(RuntimeError):
    """A problem told in one line: found before the run starts (inputs, output folder), or one
    that stopped it (a dead worker process)."""


def expand_inputs(patterns: list[str]) -> list[str]:
    """Every file the patterns name, sorted; a folder stands for the files below it."""
    paths: set[str] = set()
    for pattern in patterns:
        matched = [] if _has_glob(pattern) else _match(FileSystems.join(pattern.rstrip("/"), "**"))
        matched = (matched or _match(pattern)) + dangling_links(pattern)  # read: quarantined
        if not matched:
            raise CurationError(f"input {pattern!r} matches no files")
        paths.update(matched)
    return sorted(paths)


def _has_glob(pattern: str) -> bool:
    return any(char in pattern for char in "*?[")


def _match(pattern: str) -> list[str]:
    results = FileSystems.match([pattern])[0].metadata_list
    return [m.path for m in results if not m.path.endswith("/")
            and not FileSystems.split(m.path)[1].startswith(".")]


def check_output(output_dir: str, overwrite: bool) -> None:
    """Refuse to mix runs: an existing run folder is only replaced with ``overwrite``. A
    README.md there that is not a run's dataset card is the user's: never replaced."""
    has_run = FileSystems.exists(FileSystems.join(output_dir, REPORT_FILE)) or any(
        _match(FileSystems.join(output_dir, folder, "*")) for folder in OUTPUT_FOLDERS)
    if has_run and not overwrite:
        raise CurationError(f"{output_dir} already holds a run; pass --overwrite to replace it")
    card = FileSystems.join(output_dir, CARD_FILE)
    if FileSystems.exists(card):
        with open_binary(card) as handle:
            if not is_dataset_card(handle.read(4096)):
                raise CurationError(f"{card} is not a winnow dataset card, and the run writes "
                                    "its card there; move it, or choose another --output")


def clear_output(output_dir: str) -> None:
    """Delete an earlier run's outputs (``check_output`` allowed it)."""
    for folder in OUTPUT_FOLDERS:
        stale = _match(FileSystems.join(output_dir, folder, "*"))
        if stale:
            FileSystems.delete(stale)
    # report.json, README.md and the temporaries of a killed write_atomically
    # (report.json.tmp-<hex>)
    for name in (REPORT_FILE, CARD_FILE):
        path = FileSystems.join(output_dir, name)
        stale = _match(f"{path}.tmp-*") + ([path] if FileSystems.exists(path) else [])
        if stale:
            FileSystems.delete(stale)


def check_models(config: WinnowConfig) -> None:
    """Load the configured quality model once on the launcher, so that a missing or unreadable
    model is an error before the run starts rather than on every worker."""
    if config.quality.active:
        try:
            load_quality_model(config.quality.model, open_binary)
        except (ValueError, OSError) as error:
            raise CurationError(f"quality.model: {error}") from error

class PrepareRemovedFn(beam.DoFn):
    """Redact PII in removed documents too (they are written and shown in reports) and cut
    their text to ``removed_text_max_chars``."""

    def __init__(self, config: WinnowConfig):
        self.config = config

    def setup(self):
        self._redactor = PiiRedactor(self.config.pii) if self.config.pii.enabled else None

    def process(self, removed: Removed):
        text = removed.text
        if self._redactor is not None:
            text = self._redactor.redact(text).text
        limit = self.config.output.removed_text_max_chars
        if limit:
            text = text[:limit]
        yield removed if text == removed.text else dataclasses.replace(removed, text=text)


class RedactQuarantinedFn(beam.DoFn):
    """Redact PII in the raw prefix of quarantined records (a malformed line still holds what
    the document held); bytes that are not UTF-8 stay as they are."""

    def __init__(self, config: PiiConfig):
        self.config = config

    def setup(self):
        self._redactor = PiiRedactor(self.config)

    def process(self, record: Quarantined):
        raw_prefix = self._redactor.redact_bytes(record.raw_prefix)
        yield record if raw_prefix == record.raw_prefix else dataclasses.replace(
            record, raw_prefix=raw_prefix)


def build_pipeline(pipeline: beam.Pipeline, inputs: list[str], paths: list[str],
                   output_dir: str, config: WinnowConfig) -> None:
    """Add the whole curation to ``pipeline``; ``paths`` are the expanded ``inputs``."""
    read = pipeline | "Read" >> ReadInputs(paths, config.input)
    docs, removed, stats, clusters = read["docs"], [], [read[STATS]], None
    near_threshold = []  # documents beside a threshold, from the stages that measure
    for stage in STAGES:
        if not stage.enabled(config):
            continue
        result = docs | stage.build(config)
        removed.append(result[REMOVED])
        stats.append(result[STATS])
        near_threshold += [result[NEAR_THRESHOLD]] if NEAR_THRESHOLD in result else []
        clusters = result.get(CLUSTERS, clusters)
        docs = result["kept"]

    # With every filtering stage off (the raw arm of an ablation) ``removed`` is empty: Flatten
    # then needs to be told the pipeline, and gives an empty PCollection.
    all_removed = (removed | "AllRemoved" >> beam.Flatten(pipeline=pipeline)
                   | "PrepareRemoved" >> beam.ParDo(PrepareRemovedFn(config)))
    quarantined = read[QUARANTINED]
    if config.pii.enabled:
        quarantined = quarantined | "RedactQuarantined" >> beam.ParDo(
            RedactQuarantinedFn(config.pii))
    fields_type = read["docs"] | "UnifyFieldTypes" >> UnifyFieldTypes(config.input)
    # Ids, file names and fields are redacted where they are written (kept/, removed/,
    # quarantined/, shards/*.documents.jsonl, report.json), never before: every ordering and
    # choice above uses the original values.
    names = NameRedactor(config.pii, paths) if config.pii.enabled else None
    written = _write_outputs(output_dir, config.output.num_shards, docs, all_removed,
                             quarantined, fields_type, names)
    if clusters is None:
        clusters = pipeline | "NoClusters" >> beam.Create([])
    if config.shards.enabled:
        built = docs | BuildShards(output_dir, config.sentences, config.tokenizer, config.pairs,
                                   config.shards.examples_per_shard,
                                   config.shards.group_documents, names)
        stats.append(built[STATS])
        manifest = built["manifest"]
    else:
        manifest = pipeline | "NoShards" >> beam.Create([])
    _ = {
        "kept": docs,
        "removed": all_removed,
        "quarantined": quarantined,
        "stats": stats | "AllStats" >> beam.Flatten(),
        "clusters": clusters,
        "manifest": manifest,
        "written": written | "AllWritten" >> beam.Flatten(),
        NEAR_THRESHOLD: near_threshold | "AllNearThreshold" >> beam.Flatten(pipeline=pipeline),
    } | "Report" >> BuildReport(output_dir, [carried_name(pattern)[0] for pattern in inputs],
                                stage_order(config), config, names)


def _write_outputs(output_dir: str, num_shards: int, kept, removed, quarantined,
                   fields_type, names: NameRedactor | None) -> tuple:
    """Write kept/, removed/ and quarantined/, redacting names with ``names`` when given;
    returns the writers' PCollections of written paths, which the report waits on."""
    join = FileSystems.join
    return (
        kept | "WriteKept" >> WriteParquetShards(
            join(output_dir, "kept"), KEPT_SCHEMA, functools.partial(kept_row, names=names),
            num_shards, fields_type),
        removed | "WriteRemoved" >> WriteParquetShards(
            join(output_dir, "removed"), REMOVED_SCHEMA,
            functools.partial(removed_row, names=names), num_shards, fields_type),
        quarantined | "WriteQuarantined" >> WriteParquetShards(
            join(output_dir, "quarantined"), QUARANTINED_SCHEMA,
            functools.partial(quarantined_row, names=names), num_shards),
    )


def beam_options(beam_args: list[str]) -> list[str]:
    """The user's Beam arguments, with construction-time type checking off unless asked for.

    The check (of the hints Beam reads from annotations, on every transform as it is applied)
    took half of the pipeline's 2 s construction, on every run. The Dataflow translation test
    builds the same graph with the check on, so a hint that does not fit still fails there."""
    if any(arg.split("=")[0] in ("--pipeline_type_check", "--no_pipeline_type_check")
           for arg in beam_args):
        return beam_args
    return [*beam_args, "--no_pipeline_type_check"]


def pipeline_options(beam_args: list[str]) -> PipelineOptions:
    """The user's Beam options, parsed now. Beam's parser answers a bad value (``--runner``
    choices, ``--direct_num_workers abc``) with its whole usage text and an exit; that becomes
    one CurationError line holding its error message."""
    options = PipelineOptions(beam_options(beam_args))
    printed = io.StringIO()
    try:
        with contextlib.redirect_stderr(printed):
            options.get_all_options()
    except SystemExit:
        message = printed.getvalue().strip().splitlines()[-1:] or ["invalid option"]
        raise CurationError(f"Beam options: {message[0].split('error: ', 1)[-1]}") from None
    sys.stderr.write(printed.getvalue())  # warnings of a parse that succeeded
    return options


def new_pipeline(options: PipelineOptions) -> beam.Pipeline:
    """A pipeline on the runner the options name. Beam validates the options for that runner
    here (Dataflow's --project, --region, --temp_location; the runner's name), raising one
    ValueError with a line per problem; it becomes one CurationError line."""
    try:
        return beam.Pipeline(runner=local_runner(options), options=options)
    except ValueError as error:
        problems = [line.strip().rstrip(".") for line in str(error).splitlines()
                    if line.strip()] or [type(error).__name__]
        raise CurationError(f"Beam options: {problems[0]} {'; '.join(problems[1:])}".strip()
                            ) from error


def local_runner(options: PipelineOptions):
    """Beam's FnApiRunner when the DirectRunner is asked for (or no runner), else None (Beam
    builds the named one).

    Beam 2.77's DirectRunner first tries Prism, downloading its binary from GitHub: offline that
    costs about a second before it falls back to the FnApiRunner, behind a firewall that drops
    packets it waits for a timeout, and online it runs the job on Prism, which ignores
    ``--direct_running_mode``. winnow's local runs always take the FnApiRunner, the runner its
    tests cover; ``--runner PrismRunner`` still picks Prism. Pipeline options reach the workers
    as the DirectRunner passes them."""
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    runner = options.view_as(StandardOptions).runner
    if runner is not None and runner.lower() not in ("direct", "directrunner"):
        return None  # Beam matches runner names the same way, ignoring case
    release_idle_stages()
    map_large_blocks()
    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    return fn_runner.FnApiRunner(provision_info=fn_runner.ExtendedProvisionInfo(
        beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded)))


def run_pipeline(pipeline: beam.Pipeline, watch_workers: bool) -> None:
    """Run ``pipeline`` to its end. ``watch_workers``: a local run with worker processes, which
    a dead worker stops with a CurationError (``pipeline.local_workers``); run folders say a
    run finished by their report.json, which such a run never writes. A Dataflow job's
    console page is printed as soon as it is submitted."""
    def run():
        result = pipeline.run()
        for line in dataflow_job_lines(result, pipeline.options):
            print(line, file=sys.stderr, flush=True)
        result.wait_until_finish()

    if not (watch_workers and watching_possible()):
        run()
        return
    try:
        run_watching_workers(run)
    except WorkerDied as error:
        raise CurationError(f"{error}: the run was stopped and nothing was published "
                            "(no report.json was written)") from error


def runs_locally(pipeline: beam.Pipeline) -> bool:
    """A run on Beam's FnApiRunner (``local_runner``), in this process or its children."""
    from apache_beam.runners.portability.fn_api_runner import fn_runner

    return isinstance(pipeline.runner, fn_runner.FnApiRunner)


def runs_local_workers(pipeline: beam.Pipeline, options: PipelineOptions) -> bool:
    """A local FnApiRunner run whose workers are processes (``multi_processing``)."""
    return (runs_locally(pipeline)
            and options.view_as(DirectOptions).direct_running_mode == "multi_processing")


def check_gcp(runner: str, paths: list[str]) -> None:
    """A CurationError naming the install command when the Dataflow runner or a gs:// path is
    asked for without the gcp extra: Beam would fail later, with a traceback (Dataflow) or
    with "Unable to get filesystem" (gs://)."""
    needs = ("the Dataflow runner" if "dataflow" in runner.lower() else
             next((path for path in paths if path.startswith("gs://")), None))
    if needs is None:
        return
    try:
        import apache_beam.io.gcp.gcsfilesystem  # noqa: F401
        import apache_beam.runners.dataflow.internal.apiclient  # noqa: F401
    except ImportError as error:
        raise CurationError(
            f"{needs} needs the gcp extra, which is not installed ({error}): "
            "pip install 'winnow[gcp]' (from a checkout: pip install -e '.[gcp]')") from error


def job_steps(pipeline: beam.Pipeline) -> int:
    """The steps of the job graph: the primitive transforms of the pipeline (those made of no
    other transforms), as a runner receives it."""
    transforms = pipeline.to_runner_api().components.transforms.values()
    return sum(1 for transform in transforms if not transform.subtransforms)


def check_memory(pipeline: beam.Pipeline, options: PipelineOptions, paths: list[str]) -> None:
    """Refuse a local run whose estimated peak memory exceeds what is available, and warn when
    it comes close (``pipeline.memory``)."""
    from apache_beam.runners.portability.fn_api_runner import fn_runner

    if not isinstance(pipeline.runner, fn_runner.FnApiRunner):
        return
    verdict = check_local_memory(paths, options)
    if verdict.level == "refuse":
        raise CurationError(verdict.message)
    if verdict.level == "warn":
        print(verdict.message, file=sys.stderr)


def run_curation(inputs: list[str], output_dir: str, config: WinnowConfig,
                 beam_args: list[str] | None = None, overwrite: bool = False,
                 progress: ProgressSettings | None = None,
                 memory_check: bool = True) -> dict[str, Any]:
    """Run a whole curation and return the finished report; with Beam's ``--dry_run=True``,
    build the job graph and return ``{"dry_run_steps": N}`` instead: nothing runs and nothing
    is written (the Dataflow runner translates the job and stops before submitting it; other
    runners would run it, so it is not given to them).

    Everything that can be checked is checked before an earlier run in ``output_dir`` is
    deleted (with ``overwrite``): the inputs, the models, the Beam options and the whole
    pipeline graph (which a file name Beam cannot carry used to fail). ``progress``: how a
    local run shows its progress on stderr (``pipeline.progress``); None shows none.
    ``memory_check``: a local run whose estimated peak memory does not fit is refused
    (``check_memory``)."""
    options = pipeline_options(beam_args or [])
    runner = str(options.view_as(StandardOptions).runner or "DirectRunner")
    check_gcp(runner, [*inputs, output_dir])
    paths = expand_inputs(inputs)
    check_models(config)
    dry_run = bool(options.get_all_options().get("dry_run"))
    if not dry_run:
        check_output(output_dir, overwrite)
    started = time.monotonic()
    pipeline = new_pipeline(options)
    if memory_check and not dry_run:
        check_memory(pipeline, options, paths)
    build_pipeline(pipeline, inputs, paths, output_dir, config)
    if dry_run:
        if "dataflow" in runner.lower():
            pipeline.run()
        return {"dry_run_steps": job_steps(pipeline)}
    clear_output(output_dir)
    running = [name for name, runs in stage_order(config) if runs]
    with local_progress(progress if runs_locally(pipeline) else None, running, paths):
        run_pipeline(pipeline, watch_workers=runs_local_workers(pipeline, options))
    report = finish_report(output_dir, time.monotonic() - started, runner)
    write_dataset_card(output_dir, report)
    return report
