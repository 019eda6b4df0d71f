"""Will a local run fit in memory? An estimate of its peak from the size of its inputs, made
before anything runs.

Beam's local runner (the FnApiRunner that ``winnow curate`` uses for the DirectRunner) holds
every PCollection between fused stages in the memory of the launching process, and each
worker process holds what it is working on, so the peak grows with the corpus.
``bench/scaling.py`` measured it (BENCHMARKS.md, "Memory of local runs"); the estimate is

    peak = fixed per process + MB of input (uncompressed) x factor of the running mode

summed over the processes (PSS). Against ``MemAvailable`` (/proc/meminfo): above it the run is
refused before it starts, above ``WARN_SHARE`` of it a warning is printed; both name a cluster
runner, where the shuffles live on the service instead. ``--no-memory-check`` runs anyway.

The input size is what the files hold once decompressed: a plain file's size, a Parquet file's
uncompressed column sizes, and a compressed file decompressed whole when it is small, else its
stored size times the ratio of its first ``SAMPLE_BYTES`` (at gzip's 100 MB/s or more, a
tenth of a second per file). Not gzip's ISIZE trailer: it holds the size of the last member
only, and files of several members (bgzip, concatenated parts) are common. Of many compressed
files, only ``SAMPLED_FILES`` spread over the list are decompressed, so the check takes about
a second however many there are; the others count their stored size times the ratio measured
on the sampled files of their kind (.gz, .zst, ...).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from winnow.pipeline.filesystem import open_binary, stored_size
from winnow.schemas.compressed import COMPRESSION_SUFFIXES, STREAM_ERRORS, decompressed

MB = 1_000_000
SAMPLE_BYTES = 16 * MB
"""Compressed bytes decompressed to measure a file's ratio (the whole file when smaller)."""
SAMPLED_FILES = 8
"""Compressed files decompressed (``SAMPLE_BYTES`` of each at most); the others are estimated
at the ratio measured on these."""
WARN_SHARE = 0.75
"""Warn when the estimate is above this share of the available memory."""


@dataclass(frozen=True)
class MemoryModel:
    """Peak PSS of a local run = ``fixed_mb`` + ``fixed_per_worker_mb`` x workers +
    ``per_input_mb`` x MB of uncompressed input."""

    fixed_mb: float
    fixed_per_worker_mb: float
    per_input_mb: float

    def peak_bytes(self, input_bytes: int, workers: int) -> int:
        return int((self.fixed_mb + self.fixed_per_worker_mb * workers) * MB
                   + self.per_input_mb * input_bytes)


# From bench/scaling.py's runs (BENCHMARKS.md, "Memory of local runs" and "Local memory, part
# 3"), per MB of input as stored uncompressed (JSONL: 1.045 MB per MB of text there), rounded
# up: a line through the two largest runs, lifted to lie above all three. in_memory: 598 /
# 1,737 / 4,480 MB peak at 42.2 / 167.3 / 668.8 MB of input (the line: 822 MB + 5.47 per MB;
# the model is 4-6% above the two largest, 90% above the smallest); multi_processing with 2
# workers (measured before the reductions of part 3, which reach its launcher only):
# 1,082 / 1,812 / 3,792 MB at 10.5 / 42.3 / 167.4 MB. The in-process runner is one process;
# with multi_processing, the launcher holds the buffers and each worker the imports, the models
# and its share of every stage. Growth past these sizes is less than linear (the tokenizer's
# sample, whose training is the peak, stops growing at ``tokenizer.sample_documents``), so
# large inputs are overestimated: the safe side.
MODELS = {
    "in_memory": MemoryModel(fixed_mb=900, fixed_per_worker_mb=0, per_input_mb=5.6),
    "multi_processing": MemoryModel(fixed_mb=600, fixed_per_worker_mb=300, per_input_mb=16.5),
}


def input_bytes(paths: list[str]) -> int:
    """The estimated uncompressed size of all ``paths``."""
    compressed = [path for path in paths if _compression(path)]
    step = -(-len(compressed) // SAMPLED_FILES)  # ceil: at most SAMPLED_FILES, spread out
    samples = {}
    for path in compressed[::step] if compressed else []:
        with contextlib.suppress(OSError):
            samples[path] = _sample(path)
    ratios = _ratios(samples)
    return sum(_estimate(path, samples, ratios) for path in paths)


def _estimate(path: str, samples: dict[str, tuple[int, int, int]],
              ratios: dict[str, float]) -> int:
    """One file's uncompressed bytes. A file that cannot be opened (a dangling symbolic link,
    a file gone since listing) counts 0: the readers quarantine it."""
    try:
        if path in samples:
            return _from_sample(*samples[path])
        suffix = _compression(path)
        if suffix:
            return int(stored_size(path) * ratios.get(suffix, 1.0))
        return file_input_bytes(path)
    except OSError:
        return 0


def file_input_bytes(path: str) -> int:
    """One file's uncompressed bytes, measured on the file alone."""
    if path.lower().endswith(".parquet"):
        return _parquet_bytes(path)
    if not _compression(path):
        return stored_size(path)
    return _from_sample(*_sample(path))


def _compression(path: str) -> str | None:
    """The compression suffix of ``path`` (".gz", ".zst", ...); None for Parquet and plain."""
    name = path.lower()
    if name.endswith(".parquet"):
        return None
    return next((suffix for suffix in COMPRESSION_SUFFIXES if name.endswith(suffix)), None)


def _ratios(samples: dict[str, tuple[int, int, int]]) -> dict[str, float]:
    """Decompressed bytes per compressed byte read, by compression suffix, over the sampled
    files that decompressed (``samples``: path -> ``_sample``'s triple)."""
    sums: dict[str, list[int]] = {}
    for path, (_, consumed, out) in samples.items():
        if out:
            totals = sums.setdefault(_compression(path), [0, 0])
            totals[0] += consumed
            totals[1] += out
    return {suffix: out / consumed for suffix, (consumed, out) in sums.items()}


def _from_sample(stored: int, consumed: int, out: int) -> int:
    """The whole size when the sample was the file, else the stored size times the ratio
    seen; the stored size when it does not decompress (the readers will quarantine it)."""
    if not out:
        return stored
    return out if consumed >= stored else int(stored * out / consumed)


def _sample(path: str) -> tuple[int, int, int]:
    """(stored bytes, compressed bytes read, bytes they decompressed to) of up to
    ``SAMPLE_BYTES`` of the stored bytes; no bytes out when they do not decompress."""
    stored = stored_size(path)
    with open_binary(path) as raw:
        limited = _Limited(raw, SAMPLE_BYTES)
        out = 0
        try:
            stream = decompressed(limited, path)
            while chunk := stream.read(1 << 16):  # what a cut stream loses: one chunk
                out += len(chunk)
        except STREAM_ERRORS:
            pass
    return stored, limited.consumed, out


class _Limited:
    """A raw binary stream that ends after ``limit`` bytes, counting what it gave."""

    def __init__(self, raw, limit: int):
        self.raw, self.limit, self.consumed = raw, limit, 0

    def read(self, size: int = -1) -> bytes:
        left = self.limit - self.consumed
        data = self.raw.read(left if size is None or size < 0 else min(size, left))
        self.consumed += len(data)
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    @property
    def closed(self) -> bool:
        return False


def _parquet_bytes(path: str) -> int:
    from winnow.schemas.parquet import ParquetFile

    try:
        with open_binary(path) as handle:
            metadata = ParquetFile(handle).metadata
            return sum(metadata.row_group(i).total_byte_size
                       for i in range(metadata.num_row_groups))
    except Exception:  # noqa: BLE001 - not Parquet after all: the readers will quarantine it
        return stored_size(path)


def mem_available() -> int | None:
    """MemAvailable of /proc/meminfo in bytes; None where there is no such file."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


@dataclass(frozen=True)
class MemoryVerdict:
    level: str
    """"ok", "warn" or "refuse"."""
    message: str


CLUSTER_HINT = ("run it on a cluster runner instead, where the shuffles live on the service "
                "(--runner DataflowRunner, or Flink or Spark through Beam's portable runners: "
                "README, \"Running on Dataflow and other runners\")")


def judge(data_bytes: int, mode: str, workers: int, available: int | None) -> MemoryVerdict:
    """Compare the estimated peak of a local run on ``data_bytes`` of input with ``available``
    bytes of memory."""
    model = MODELS.get(mode, MODELS["in_memory"])  # multi_threading: one process too
    peak = model.peak_bytes(data_bytes, workers if mode == "multi_processing" else 0)
    if available is None:
        return MemoryVerdict("ok", "")
    figures = (f"{data_bytes / MB:,.0f} MB of input (uncompressed) needs about "
               f"{peak / MB:,.0f} MB of memory in a local {mode} run"
               + (f" with {workers} workers" if mode == "multi_processing" else "")
               + f", and {available / MB:,.0f} MB is available")
    if peak > available:
        return MemoryVerdict("refuse", f"not enough memory: {figures}; {CLUSTER_HINT}, or pass "
                                       "--no-memory-check to try anyway")
    if peak > WARN_SHARE * available:
        return MemoryVerdict("warn", f"warning: memory is short: {figures}; if the run fails, "
                                     f"{CLUSTER_HINT}")
    return MemoryVerdict("ok", figures)


def local_run_mode(options) -> tuple[str, int]:
    """(direct_running_mode, worker count) of a local run's options; a worker count of 0 means
    one per CPU, as Beam reads it."""
    import os

    from apache_beam.options.pipeline_options import DirectOptions

    direct = options.view_as(DirectOptions)
    workers = direct.direct_num_workers or os.cpu_count() or 1
    return direct.direct_running_mode or "in_memory", workers


def check_local_memory(paths: list[str], options) -> MemoryVerdict:
    """The verdict for a local run of ``options`` on ``paths``."""
    mode, workers = local_run_mode(options)
    return judge(input_bytes(paths), mode, workers, mem_available())


# -- giving freed memory back ----------------------------------------------------------------

IDLE_STAGE_SECONDS = 1
"""How long Beam's in-process worker keeps a finished stage's processor (Beam's own: 60 s)."""


def release_idle_stages() -> None:
    """Make this process's Beam worker drop a fused stage's processor ``IDLE_STAGE_SECONDS``
    after its last bundle instead of 60 s (``sdk_worker.BundleProcessorCache``, which reads
    the module's threshold when the worker starts and at each check).

    A cached processor holds its DoFns and, through each output operation, the last output
    stream it wrote, whose buffer keeps its largest size: up to 16 MiB per output of every
    stage (Beam flushes at 10 MB, the buffer doubles). A local run's stages follow each other
    in seconds, so at the tokenizer's training every earlier stage was still cached: at 40 MB
    of text 260 MB of heap (bench/memory_timeline.py: heap in use 407 MB before training,
    143 MB with this). A stage that runs again later sets its DoFns up again; the outputs do
    not change. Call it before the run starts (``curate.local_runner``); in a worker process
    that is already running (``tune_this_process``), Beam's check every 60 s then drops the
    stages idle for a second."""
    from apache_beam.runners.worker import sdk_worker

    sdk_worker.DEFAULT_BUNDLE_PROCESSOR_CACHE_SHUTDOWN_THRESHOLD_S = IDLE_STAGE_SECONDS


TRIM_EVERY_SECONDS = 1.0
_last_trim = [0.0]


def release_free_memory() -> bool:
    """Hand the heap's free pages back to the system (glibc's ``malloc_trim``), at most once a
    ``TRIM_EVERY_SECONDS`` per process; False where there is no glibc or it was too soon.

    The local runner's stages each build and drop copies of their whole input (encoded,
    decoded, grouped), mostly large strings that glibc serves from its heap and keeps, once
    freed, for reuse; freed between live objects, that memory stays in the process. The next
    large allocation (a stage with more data, SentencePiece's arrays) then comes on top of it
    instead of in its place. Called at the end of each bundle of winnow's DoFns and before the
    tokenizer trains."""
    import time

    now = time.monotonic()
    if now - _last_trim[0] < TRIM_EVERY_SECONDS:
        return False
    _last_trim[0] = now
    trim = _glibc_function("malloc_trim")
    if trim is None:
        return False
    trim(0)
    return True


_PROCESS_TUNED = []


def tune_this_process() -> None:
    """``release_idle_stages`` and ``map_large_blocks`` once in this process: called by the
    DoFns' setup, so that a ``multi_processing`` run's worker processes, which the launcher's
    call does not reach, drop finished stages too (at Beam's next check there, every 60 s)."""
    if not _PROCESS_TUNED:
        _PROCESS_TUNED.append(True)
        release_idle_stages()
        map_large_blocks()


MMAP_THRESHOLD_BYTES = 64 * 1024
"""Allocations of at least this size get their own mapping, unmapped when freed."""
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)


def map_large_blocks() -> bool:
    """Have glibc serve every allocation of ``MMAP_THRESHOLD_BYTES`` or more from its own
    mapping, given back to the system as soon as it is freed; False where there is no glibc.

    glibc's threshold starts at 128 KiB and rises to the size of each mapped block freed (up to
    32 MiB), so after the first large texts and encoded buffers are freed, later ones come from
    the heap, where freed blocks between live ones stay in the process. Fixed at 64 KiB, more
    of a stage's large temporaries (documents' texts and pickles, Beam's encoded buffers) leave
    with it (a block still comes from the heap when its free space has room):
    bench/memory_timeline.py at 40 MB of text, peak PSS 707 -> 633 MB. Call it before the
    run."""
    mallopt = _glibc_function("mallopt")
    return bool(mallopt and mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


def _glibc_function(name: str):
    import ctypes
    import ctypes.util

    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
    except (OSError, AttributeError):  # not glibc (macOS, musl)
        return None
