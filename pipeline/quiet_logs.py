"""Beam's start-up noise, hidden from every ``winnow`` command unless ``winnow curate --verbose``.

Every local run printed lines that say nothing about the run:
- each ``multi_processing`` worker's own warnings, forwarded by the launcher's job service as
  a raw protobuf dump (``Worker: severity: WARN timestamp { seconds: ... } message: "..."
  log_location: "..."``): "No semi_persistent_directory found" and "Discarding unparseable
  args: ['--direct_runner_use_stacked_bundle']" from every worker, every run;
- "apitools not found, and bigquery client libraries are not available ...", logged when
  Beam's BigQuery client package is imported without the gcp extra's apitools (winnow uses no
  BigQuery).

``hide_beam_noise`` drops those known lines and writes any other worker record as its own
message (``worker: ...``), so a real warning from winnow or Beam still shows, readably.
"""

from __future__ import annotations

import logging

BEAM_NOISE = (
    "apitools not found",
    "No semi_persistent_directory found",
    "Discarding unparseable args",
)
"""Starts of the messages hidden (see the module docstring for where each comes from)."""
WORKER_LOG_LOGGER = "apache_beam.runners.portability.local_job_service"
WORKER_LOG_FORMAT = "Worker: %s"
"""How the job service logs a worker's record: ``str(LogEntry)`` with newlines as spaces."""


class BeamNoiseFilter(logging.Filter):
    """A handler filter: False for Beam's known noise; a worker's record becomes its message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == WORKER_LOG_LOGGER and record.msg == WORKER_LOG_FORMAT:
            message = worker_message(str(record.args[0])) if record.args else None
            if message is not None:
                record.msg, record.args = "worker: %s", (message,)
        return not record.getMessage().removeprefix("worker: ").startswith(BEAM_NOISE)


def worker_message(entry_text: str) -> str | None:
    """The message of a worker's log entry as the job service prints it (protobuf text
    format of ``beam_fn_api_pb2.LogEntry``), with its trace when it has one; None when the
    text does not parse."""
    from apache_beam.portability.api import beam_fn_api_pb2
    from google.protobuf import text_format

    entry = beam_fn_api_pb2.LogEntry()
    try:
        text_format.Parse(entry_text, entry)
    except text_format.ParseError:
        return None
    return f"{entry.message}\n{entry.trace}" if entry.trace else entry.message


def hide_beam_noise() -> None:
    """Hide Beam's noise from the root logger's handlers for the rest of the process. Called by
    the ``winnow`` command before anything imports Beam (its BigQuery warning comes at import),
    unless ``--verbose``."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(BeamNoiseFilter())
