"""The command's flags and its expected failures: a flag that is neither the command's nor Beam's
is refused (exit 2, with the closest real flag), where Beam used to log a warning and run without
it; expected failures are one line with exit code 2 (``--debug`` adds the traceback)."""

import json
import re
import sys
from importlib import metadata

import pytest

from winnow.cli import main


@pytest.fixture
def input_file(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"text": "one document"}) + "\n")
    return str(path)


def _usage_error(capsys, argv: list[str]) -> str:
    """The error line of an argparse usage error (exit 2) of ``winnow ARGV``."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("winnow curate: "), err
    return err


@pytest.mark.parametrize("flags, refused", [
    # curate's own flag: the run went ahead, refusing nothing
    (["--output", "RUN", "--overwrte"], "--overwrte (did you mean --overwrite?)"),
    # Beam's: it ran one worker
    (["--output", "RUN", "--direct_num_worker=2"],
     "--direct_num_worker=2 (did you mean --direct_num_workers?)"),
    # not "INPUT and --output are required"
    (["--ouptut", "RUN"], "--ouptut RUN (did you mean --output?)"),
])
def test_a_misspelt_flag_is_refused_with_the_real_one(tmp_path, capsys, input_file, flags,
                                                      refused):
    run = tmp_path / "run"
    error = _usage_error(capsys, ["curate", input_file,
                                  *(str(run) if flag == "RUN" else flag for flag in flags)])
    assert error == ("winnow curate: error: unrecognized arguments: "
                     + refused.replace("RUN", str(run)))
    assert not run.exists()


def test_every_command_refuses_unknown_flags_with_the_real_one(tmp_path, capsys):
    error = _usage_error(capsys, ["report", str(tmp_path), "--jsn"])
    assert error == "winnow report: error: unrecognized arguments: --jsn (did you mean --json?)"


def test_a_flag_far_from_every_real_one_is_named_without_a_guess(tmp_path, capsys, input_file):
    error = _usage_error(capsys, ["curate", input_file, "--output", str(tmp_path / "run"),
                                  "--zzz", "extra.jsonl"])
    assert error == "winnow curate: error: unrecognized arguments: --zzz extra.jsonl"


def test_beam_options_in_both_spellings_still_reach_beam(tmp_path, input_file):
    run = tmp_path / "run"
    assert main(["curate", input_file, "--output", str(run), "--direct_num_workers=2",
                 "--direct_running_mode", "multi_processing"]) == 0
    assert json.loads((run / "report.json").read_text())["documents"]["input"] == 1


def test_a_job_server_runner_gets_the_flags_only_its_server_may_know(tmp_path, capsys,
                                                                      input_file):
    # Flink's job server defines options Python's Beam does not know; a misspelt one is refused.
    args = ["curate", input_file, "--output", str(tmp_path / "run"), "--runner", "FlinkRunner",
            "--dry_run=True"]
    assert main([*args, "--checkpointing_interval", "3"]) == 0
    assert "built the job graph" in capsys.readouterr().out
    assert _usage_error(capsys, [*args, "--flink_mastr", "h:1"]).endswith(
        "(did you mean --flink_master?)")


def test_curate_usage_shows_input_and_output_as_required(capsys):
    with pytest.raises(SystemExit):
        main(["curate", "--help"])
    text = capsys.readouterr().out
    usage = text.split("\n\n")[0]
    assert usage.startswith("usage: winnow curate INPUT [INPUT ...] --output DIR ")
    # every flag of curate's own (the options listed below the usage) is in the usage lines
    options = text.split("\noptions:\n")[1].split("\n\n")[0]
    flags = set(re.findall(r"^  (--[a-z-]+)", options, re.M)) - {"--help"}
    assert len(flags) >= 8 and [flag for flag in sorted(flags) if flag not in usage] == []


def test_version(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"winnow {metadata.version('winnow')}\n"


@pytest.mark.parametrize("beam_args, named", [
    (["--runner", "DataflowRuner"], "Unexpected pipeline runner: DataflowRuner"),
])
def test_a_misspelt_runner_is_one_line(tmp_path, capsys, input_file, beam_args, named):
    assert main(["curate", input_file, "--output", str(tmp_path / "run"), *beam_args]) == 2
    assert named in _one_line_error(capsys)


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback_before_the_line(tmp_path, capsys, input_file, where):
    argv = ["curate", input_file, "--output", str(tmp_path / "run"),
            "--config", str(tmp_path / "missing.yaml")]
    assert main(["--debug", *argv] if where == "before" else [*argv, "--debug"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert "in load_config" in err and "ConfigError" in err
    assert err.splitlines()[-1].startswith("winnow curate: invalid config: ")


@pytest.mark.parametrize("where", [
    ["--runner", "DataflowRunner", "--project", "p", "--region", "r"], ["gs://bucket/in.jsonl"]])
def test_dataflow_or_gcs_without_the_gcp_extra_names_the_install(tmp_path, capsys, monkeypatch,
                                                                 input_file, where):
    # What an install without apache-beam[gcp] lacks (None in sys.modules fails an import).
    monkeypatch.setitem(sys.modules, "apache_beam.runners.dataflow.internal.apiclient", None)
    inputs = where if where[0].startswith("gs://") else [input_file, *where]
    assert main(["curate", *inputs, "--output", str(tmp_path / "run")]) == 2
    assert "needs the gcp extra, which is not installed" in (error := _one_line_error(capsys))
    assert error.endswith("pip install 'winnow[gcp]' (from a checkout: pip install -e '.[gcp]')\n")


def test_a_local_dry_run_builds_the_graph_and_runs_nothing(tmp_path, capsys, input_file):
    run = tmp_path / "run"
    assert main(["curate", input_file, "--output", str(run), "--dry_run=True"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("dry run: built the job graph (")
    assert out[-1].endswith(" steps), nothing was run")
    assert int(out[-1].split("(")[1].split()[0]) > 100
    assert not run.exists()
