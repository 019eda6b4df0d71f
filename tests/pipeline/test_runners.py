"""The same pipeline on other runners: Dataflow job translation, and worker packaging."""

import json
import os
import subprocess
import sys
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.stager import Stager

from winnow.pipeline.config import config_from_dict
from winnow.pipeline.curate import build_pipeline, local_runner

REPO = Path(__file__).resolve().parents[2]
SAMPLE_EXTRA = REPO / "examples" / "sample" / "extra.jsonl"
DATAFLOW_DRY_RUN = [
    "--runner=DataflowRunner", "--dry_run=True", "--no_auth",
    "--project=winnow-ci-project", "--region=us-central1",
    "--temp_location=gs://winnow-ci-bucket/tmp", "--sdk_location=container",
]


def test_local_runs_take_the_fn_api_runner_and_keep_the_options():
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    for args in ([], ["--runner=DirectRunner"], ["--runner=direct"]):
        runner = local_runner(PipelineOptions(
            args + ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]))
        assert isinstance(runner, FnApiRunner)
        options = runner._provision_info.provision_info.pipeline_options
        assert options["beam:option:direct_running_mode:v1"] == "multi_processing"
        assert str(options["beam:option:direct_num_workers:v1"]) == "2"
    assert local_runner(PipelineOptions(DATAFLOW_DRY_RUN)) is None
    assert local_runner(PipelineOptions(["--runner=PrismRunner"])) is None


@pytest.fixture(scope="module")
def dataflow_job():
    """The components of the Dataflow job the default config translates to (dry run)."""
    pipeline = beam.Pipeline(options=PipelineOptions(DATAFLOW_DRY_RUN))
    build_pipeline(pipeline, ["gs://winnow-ci-bucket/in/*.jsonl.gz"],
                   ["gs://winnow-ci-bucket/in/a.jsonl.gz"], "gs://winnow-ci-bucket/run",
                   config_from_dict({}))
    return pipeline.run().job.proto_pipeline.components


def test_the_pipeline_translates_for_dataflow(dataflow_job):
    names = {transform.unique_name for transform in dataflow_job.transforms.values()}
    for step in ("Read/ParseRecords", "normalize", "heuristics", "language",
                 "exact_dedup/GroupByText", "boilerplate/JoinRemovals", "pii",
                 "UnifyFieldTypes/UnifyTypes", "WriteKept/WriteShard", "WriteRemoved/WriteShard",
                 "Report/WriteReport"):
        assert step in names, step


def test_the_staged_package_runs_a_curation_in_a_fresh_environment(tmp_path):
    # Build the sdist exactly as Beam's stager does for --setup_file pyproject.toml.
    sdist = Stager._build_setup_package(str(REPO / "pyproject.toml"), str(tmp_path))
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--target", str(site), sdist], check=True)
    assert (site / "winnow" / "filters" / "models" / "lid.176.ftz").is_file()
    # One import name: nothing generic such as `pipeline` or `trainer` lands at the top level.
    installed = {path.name for path in site.iterdir() if not path.name.endswith(".dist-info")}
    assert installed - {"bin"} == {"winnow"}

    env = {**os.environ, "PYTHONPATH": str(site)}
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = subprocess.run([sys.executable, "-c", "import winnow.pipeline as p; print(p.__file__)"],
                           cwd=work, env=env, check=True, capture_output=True, text=True)
    assert where.stdout.startswith(str(site))
    subprocess.run([sys.executable, "-m", "winnow", "curate", str(SAMPLE_EXTRA),
                    "--output", str(tmp_path / "run")], cwd=work, env=env, check=True,
                   capture_output=True)
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["documents"]["input"] == 6
    assert report["documents"]["removed"]["exact_duplicate"] == 1


def test_construction_type_checks_are_off_unless_asked_for():
    from apache_beam.options.pipeline_options import TypeOptions

    from winnow.pipeline.curate import beam_options

    def checked(args):
        return PipelineOptions(beam_options(args)).view_as(TypeOptions).pipeline_type_check

    assert not checked([]) and not checked(["--runner=DirectRunner"])
    assert checked(["--pipeline_type_check"])
    assert PipelineOptions(DATAFLOW_DRY_RUN).view_as(TypeOptions).pipeline_type_check


def upstream_transforms(components, transform_name: str) -> set[str]:
    """Unique names of every leaf transform whose output ``transform_name`` consumes, directly or
    through others; side inputs count (they are inputs of the consuming transform)."""
    leaves = {key: t for key, t in components.transforms.items() if not t.subtransforms}
    producer = {pcollection: key for key, t in leaves.items() for pcollection in t.outputs.values()}
    start = next(key for key, t in leaves.items() if t.unique_name == transform_name)
    seen, pending = set(), [start]
    while pending:
        for pcollection in leaves[pending.pop()].inputs.values():
            key = producer.get(pcollection)
            if key is not None and key not in seen:
                seen.add(key)
                pending.append(key)
    return {leaves[key].unique_name for key in seen}


def test_report_json_is_written_only_after_every_output_on_dataflow(dataflow_job):
    # report.json says "this run is complete": on a distributed runner nothing orders steps that
    # do not depend on each other, so its write must consume every writer's result.
    before_report = upstream_transforms(dataflow_job, "Report/WriteReport")
    writers = [f"Write{folder}/{step}" for folder in ("Kept", "Removed", "Quarantined")
               for step in ("WriteShard", "WriteEmptyShards")]
    writers += ["shards/WriteTokenizer", "shards/WriteShards", "shards/WriteManifest"]
    assert [writer for writer in writers if writer not in before_report] == []
