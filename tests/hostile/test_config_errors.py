"""A config file that cannot be read, or Beam options Beam rejects, are one line on stderr
(``winnow curate: ...``) and exit code 2: they used to be tracebacks, or Beam's whole usage text.
"""

import json

import pytest

from winnow.cli import main


@pytest.fixture
def input_file(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"text": "one document"}) + "\n")
    return str(path)


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("winnow curate: "), err
    return err


@pytest.mark.parametrize("config", ["missing.yaml", "."])
def test_a_config_file_that_cannot_be_read(tmp_path, capsys, input_file, config):
    path = str(tmp_path / config)
    assert main(["curate", input_file, "--output", str(tmp_path / "run"),
                 "--config", path]) == 2
    assert path in _one_line_error(capsys)


@pytest.mark.parametrize("beam_args, named", [
    (["--runner", "DataflowRunner"], "Missing required option: project"),
    (["--runner", "NoSuchRunner"], "Unexpected pipeline runner: NoSuchRunner"),
    (["--direct_num_workers", "abc"], "--direct_num_workers: invalid int value: 'abc'"),
    (["--direct_running_mode", "bogus"], "--direct_running_mode: invalid choice: 'bogus'"),
])
def test_beam_options_beam_rejects(tmp_path, capsys, input_file, beam_args, named):
    run = tmp_path / "run"
    assert main(["curate", input_file, "--output", str(run), *beam_args]) == 2
    assert named in _one_line_error(capsys)
    assert not run.exists()
