"""The memory check before a local run: the input size it estimates from (compressed files
included), the verdict it reaches against the available memory, and what ``winnow curate``
does with it (refuse with exit 2 in one line, warn and run, or run with --no-memory-check)."""

import gzip
import json
import time

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.worker import sdk_worker
from apache_beam.testing.util import assert_that, equal_to

from winnow.cli import main
from winnow.pipeline import memory
from winnow.pipeline.config import load_config
from winnow.pipeline.curate import CurationError, check_memory, new_pipeline, run_curation

MB = memory.MB
LINES = "".join(json.dumps({"id": str(i), "text": f"document {i} " + "word " * (i % 50)}) + "\n"
                for i in range(3000)).encode()


@pytest.fixture
def inputs(tmp_path):
    """The same JSONL lines stored plain, gzipped, as two gzip members, and zstd-compressed."""
    paths = {"plain": tmp_path / "a.jsonl", "gz": tmp_path / "b.jsonl.gz",
             "gz_members": tmp_path / "c.jsonl.gz", "zst": tmp_path / "d.jsonl.zst"}
    paths["plain"].write_bytes(LINES)
    paths["gz"].write_bytes(gzip.compress(LINES))
    half = len(LINES) // 2
    paths["gz_members"].write_bytes(gzip.compress(LINES[:half]) + gzip.compress(LINES[half:]))
    paths["zst"].write_bytes(zstandard.ZstdCompressor().compress(LINES))
    return {name: str(path) for name, path in paths.items()}


@pytest.mark.parametrize("name", ["plain", "gz", "gz_members", "zst"])
def test_small_files_count_their_uncompressed_bytes(inputs, name):
    assert memory.file_input_bytes(inputs[name]) == len(LINES)


def test_a_large_compressed_file_is_estimated_from_the_ratio_of_its_start(inputs, monkeypatch):
    monkeypatch.setattr(memory, "SAMPLE_BYTES", 8192)  # the file holds 18.6 KB
    estimate = memory.file_input_bytes(inputs["gz"])
    assert estimate != len(LINES)
    assert 0.5 * len(LINES) < estimate < 2 * len(LINES)


def test_of_many_compressed_files_a_few_are_decompressed_and_the_rest_take_their_ratio(
        tmp_path, monkeypatch):
    paths = []
    for n in range(20):  # 20 gzip files, plus plain ones that are never decompressed
        paths.append(tmp_path / f"{n:02d}.jsonl.gz")
        paths[-1].write_bytes(gzip.compress(LINES[: len(LINES) * (n + 1) // 20]))
    (tmp_path / "plain.jsonl").write_bytes(LINES)
    truth = sum(len(LINES) * (n + 1) // 20 for n in range(20)) + len(LINES)
    decompressed = []
    real = memory.decompressed
    monkeypatch.setattr(memory, "decompressed",
                        lambda raw, path: decompressed.append(path) or real(raw, path))

    estimate = memory.input_bytes([str(path) for path in paths] + [str(tmp_path / "plain.jsonl")])

    assert sorted(decompressed) == [str(paths[n]) for n in (0, 3, 6, 9, 12, 15, 18)]
    assert 0.9 * truth < estimate < 1.1 * truth
    decompressed.clear()
    assert memory.input_bytes([str(path) for path in paths[:8]]) == sum(
        len(LINES) * (n + 1) // 20 for n in range(8))  # up to SAMPLED_FILES: each measured
    assert len(decompressed) == 8


def test_a_missing_or_broken_file_counts_nothing_or_its_stored_size(tmp_path):
    (tmp_path / "gone.jsonl.gz").symlink_to(tmp_path / "nowhere")
    (tmp_path / "bad.jsonl.zst").write_bytes(b"plain text named .zst\n" * 10)
    (tmp_path / "good.jsonl.gz").write_bytes(gzip.compress(LINES))
    assert memory.input_bytes([str(tmp_path / name) for name in (
        "gone.jsonl.gz", "bad.jsonl.zst", "good.jsonl.gz")]) == 220 + len(LINES)


def test_parquet_counts_its_uncompressed_columns(tmp_path):
    path = tmp_path / "e.parquet"
    texts = [f"document {i} " + "word " * (i % 50) for i in range(3000)]
    pq.write_table(pa.table({"text": texts}), path, compression="zstd")
    text_bytes = sum(len(text) for text in texts)
    assert path.stat().st_size < text_bytes / 4  # it compresses well...
    assert 0.9 * text_bytes < memory.file_input_bytes(str(path)) < 1.5 * text_bytes  # ...not us


def test_a_file_that_does_not_decompress_counts_its_stored_size(tmp_path):
    path = tmp_path / "f.jsonl.zst"
    path.write_bytes(b"plain text named .zst\n" * 10)
    assert memory.file_input_bytes(str(path)) == 220


def test_the_verdict_gives_the_numbers_and_names_a_cluster_runner():
    model = memory.MODELS["in_memory"]
    peak = model.peak_bytes(500 * MB, 0)
    refused = memory.judge(500 * MB, "in_memory", 1, available=peak - 1)
    assert refused.level == "refuse"
    assert refused.message.startswith(
        f"not enough memory: 500 MB of input (uncompressed) needs about {peak / MB:,.0f} MB "
        f"of memory in a local in_memory run, and {(peak - 1) / MB:,.0f} MB is available")
    assert "DataflowRunner" in refused.message and "--no-memory-check" in refused.message
    assert memory.judge(500 * MB, "in_memory", 1, available=peak + 1).level == "warn"
    assert memory.judge(500 * MB, "in_memory", 1, available=2 * peak).level == "ok"
    assert memory.judge(500 * MB, "in_memory", 1, available=None).level == "ok"


def test_workers_add_to_the_estimate_of_a_multi_processing_run():
    one = memory.judge(100 * MB, "multi_processing", 1, available=None)
    four = memory.judge(100 * MB, "multi_processing", 4, available=10 ** 12)
    assert one.level == four.level == "ok"
    assert "with 4 workers" in four.message
    model = memory.MODELS["multi_processing"]
    assert model.peak_bytes(100 * MB, 4) - model.peak_bytes(100 * MB, 1) == 3 * int(
        model.fixed_per_worker_mb * MB)


def _available(monkeypatch, megabytes: float) -> None:
    monkeypatch.setattr(memory, "mem_available", lambda: int(megabytes * MB))


def test_curate_refuses_a_run_that_does_not_fit_before_touching_the_output(
        tmp_path, inputs, monkeypatch, capsys):
    _available(monkeypatch, 100)
    run = tmp_path / "run"
    assert main(["curate", inputs["gz"], "--output", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("winnow curate: not enough memory: 0 MB of input (uncompressed) "
                          "needs about ")
    assert "100 MB is available" in err and "DataflowRunner" in err
    assert not run.exists()


def test_a_run_close_to_the_limit_warns_and_goes_on(inputs, monkeypatch, capsys):
    peak = memory.MODELS["in_memory"].peak_bytes(len(LINES), 0)
    _available(monkeypatch, peak / MB / 0.9)
    options = PipelineOptions([])
    check_memory(new_pipeline(options), options, [inputs["gz"]])
    err = capsys.readouterr().err
    assert err.startswith("warning: memory is short: ") and "DataflowRunner" in err


def test_a_multi_processing_run_is_estimated_with_its_workers(inputs, monkeypatch):
    _available(monkeypatch, 1)
    options = PipelineOptions(["--direct_running_mode=multi_processing",
                               "--direct_num_workers=2"])
    with pytest.raises(CurationError, match="in a local multi_processing run with 2 workers"):
        check_memory(new_pipeline(options), options, [inputs["gz"]])


def test_no_memory_check_skips_the_check(tmp_path, inputs, monkeypatch):
    _available(monkeypatch, 1)

    def built(*args):
        raise RuntimeError("the pipeline was built")

    monkeypatch.setattr("winnow.pipeline.curate.build_pipeline", built)
    with pytest.raises(RuntimeError, match="the pipeline was built"):
        run_curation([inputs["gz"]], str(tmp_path / "run"), load_config(None), [],
                     memory_check=False)


def test_other_runners_are_not_checked(inputs, monkeypatch):
    _available(monkeypatch, 1)
    options = PipelineOptions(["--runner", "PrismRunner"])
    check_memory(new_pipeline(options), options, [inputs["gz"]])  # no error


_TORN_DOWN = []


class _RecordsTeardown(beam.DoFn):
    def process(self, element):
        yield element

    def teardown(self):
        _TORN_DOWN.append("first stage")


def _first_stage_released(element) -> bool:
    """Waits (up to 20 s) for the first stage's DoFn to be torn down while the run goes on."""
    deadline = time.monotonic() + 20
    while not _TORN_DOWN and time.monotonic() < deadline:
        time.sleep(0.1)
    return bool(_TORN_DOWN)


def test_a_local_run_releases_a_finished_stage_while_it_goes_on(monkeypatch):
    """Beam keeps a finished stage's processor, its DoFns and output buffers, for 60 s; a
    local run drops it after ``IDLE_STAGE_SECONDS``, so a later stage sees it torn down."""
    monkeypatch.setattr(sdk_worker, "DEFAULT_BUNDLE_PROCESSOR_CACHE_SHUTDOWN_THRESHOLD_S", 60)
    _TORN_DOWN.clear()
    pipeline = new_pipeline(PipelineOptions([]))
    released = (pipeline
                | beam.Create([("key", 1)])
                | "First" >> beam.ParDo(_RecordsTeardown())
                | beam.GroupByKey()  # the next stage is another fused stage
                | "Later" >> beam.Map(_first_stage_released))
    assert_that(released, equal_to([True]))
    pipeline.run().wait_until_finish()


def test_a_local_run_has_glibc_map_large_blocks_of_their_own(monkeypatch):
    """``mallopt(M_MMAP_THRESHOLD, 64 KiB)``: fixed, so glibc's threshold no longer rises to
    each freed block's size (up to 32 MiB) and keeps large freed blocks in the heap. (Whether a
    given block is mapped also depends on the heap's free space, so it is not tested here.)"""
    calls = []
    monkeypatch.setattr(memory, "_glibc_function",
                        lambda name: lambda *args: calls.append((name, *args)) or 1)
    new_pipeline(PipelineOptions([]))
    assert calls == [("mallopt", -3, 64 * 1024)]
    calls.clear()
    new_pipeline(PipelineOptions(["--runner", "PrismRunner"]))  # not a local FnApiRunner
    assert calls == []


def test_every_process_running_winnow_dofns_is_tuned_once(monkeypatch):
    """A multi_processing run's workers are other processes: the DoFns' setup (BundleStats)
    tunes each, once."""
    from winnow.pipeline.transforms import BundleStats

    calls = []
    monkeypatch.setattr(memory, "_PROCESS_TUNED", [])
    monkeypatch.setattr(memory, "release_idle_stages", lambda: calls.append("stages"))
    monkeypatch.setattr(memory, "map_large_blocks", lambda: calls.append("blocks"))
    BundleStats()
    BundleStats()
    assert calls == ["stages", "blocks"]
