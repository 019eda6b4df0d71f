"""The command-line flags Beam knows, so that the ``winnow`` command can refuse the ones it
does not: Beam only logs a warning for a flag it cannot parse and runs without it
(``--direct_num_worker=2`` ran one worker, ``--overwrte`` refused nothing).

Beam's own parser decides what it knows: the one ``PipelineOptions`` reads its flags with, with
every option of every ``PipelineOptions`` subclass (standard, direct, Dataflow's Google Cloud,
worker, setup and debug options, portable, Flink, Spark, Prism, S3, Azure, HDFS, test: 177 flags
in Beam 2.77, all defined in ``apache_beam.options.pipeline_options``), so ``--key=value`` and
``--key value`` are read exactly as Beam reads them, without abbreviations."""

from __future__ import annotations

import argparse
import contextlib
import io
from typing import NamedTuple

# Runners whose job server may define more options than Python's Beam knows (Beam asks the
# job service for them, e.g. Flink's Java-side options): a flag Beam does not know may be one.
JOB_SERVER_RUNNERS = ("flink", "spark", "portable", "prism", "kafkastreams")


class BeamArgs(NamedTuple):
    unknown: list[str]
    """The arguments Beam's parser does not take, in order (a value after an unknown flag too)."""
    flags: list[str]
    """Every flag Beam knows, e.g. ``--direct_num_workers``."""
    job_server_runner: bool
    """``--runner`` names a runner whose job server may know flags Beam does not."""


def beam_parser() -> argparse.ArgumentParser:
    """Beam's parser of pipeline options, as ``PipelineOptions.get_all_options`` builds it (its
    ``add_extra_args_fn`` hook hands it over)."""
    from apache_beam.options.pipeline_options import PipelineOptions

    parsers: list[argparse.ArgumentParser] = []
    PipelineOptions([]).get_all_options(add_extra_args_fn=parsers.append)
    return parsers[0]


def read_beam_args(beam_args: list[str]) -> BeamArgs:
    """What Beam makes of ``beam_args``: the arguments it does not know, and its flags. A value
    Beam refuses (``--direct_num_workers abc``) stops its parser before it has seen them all:
    then nothing is unknown yet, and the run says what Beam refused, in one line."""
    parser = beam_parser()
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # Beam's usage text, on a bad value
            known, unknown = parser.parse_known_args(beam_args)
    except SystemExit:
        known, unknown = argparse.Namespace(runner=None), []
    runner = (known.runner or "").rsplit(".", 1)[-1].lower().removesuffix("runner")
    flags = sorted({flag for action in parser._actions for flag in action.option_strings})
    return BeamArgs(unknown, flags, runner in JOB_SERVER_RUNNERS)
