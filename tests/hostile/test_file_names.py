"""Input file names that are not UTF-8, and an earlier run that must survive a failed start.

Linux allows any bytes in a file name; Beam's coders carry only UTF-8 strings, so such a name
used to crash the run while the pipeline was built, after ``--overwrite`` had deleted the run
before it. Now the file is quarantined as ``unreadable_file`` under its name with the other
bytes written as ``\\xNN``, and nothing is deleted before every check has passed.
"""

import json
import os

import pyarrow.parquet as pq
import pytest

from winnow.pipeline.config import config_from_dict
from winnow.pipeline.curate import CurationError, run_curation
from winnow.schemas.report import check_accounting

TEXT = ("The river that runs through the old town was once the main road for traders, and the "
        "stone bridge that crosses it is still the oldest building in the region. ") * 3


def _inputs(folder, bad_name: bool = True):
    """Two good JSONL files and, with ``bad_name``, one named b'bad\\xff.jsonl'."""
    folder.mkdir()
    for name in ("a.jsonl", "b.jsonl"):
        (folder / name).write_text(json.dumps({"id": name, "text": TEXT}) + "\n")
    if bad_name:
        try:
            with open(os.path.join(os.fsencode(folder), b"bad\xff.jsonl"), "wb") as handle:
                handle.write(json.dumps({"id": "bad", "text": TEXT}).encode() + b"\n")
        except OSError as error:  # filesystems that require UTF-8 names (APFS)
            pytest.skip(f"this filesystem refuses a non-UTF-8 name: {error}")
    return folder


def test_a_name_beam_cannot_carry_is_quarantined_and_the_others_run(tmp_path):
    inputs = _inputs(tmp_path / "in")
    bad = os.fsdecode(os.path.join(os.fsencode(inputs), b"bad\xff.jsonl"))

    # The folder, and the bad file named on its own (as a shell glob would pass it).
    report = run_curation([str(inputs), bad], str(tmp_path / "run"), config_from_dict({}))

    escaped = f"{inputs}/bad\\xff.jsonl"
    assert check_accounting(report) == []
    assert report["documents"]["input"] == 3
    assert report["documents"]["quarantined"] == {"unreadable_file": 1}
    assert report["inputs"] == [str(inputs), escaped]
    (row,) = pq.read_table(tmp_path / "run" / "quarantined").to_pylist()
    assert (row["input_file"], row["reason"]) == (escaped, "unreadable_file")
    assert "not valid UTF-8" in row["detail"]


def test_an_earlier_run_survives_a_start_that_fails_its_checks(tmp_path):
    run = tmp_path / "run"
    run_curation([str(_inputs(tmp_path / "first", bad_name=False))], str(run),
                 config_from_dict({}))
    report, kept = (run / "report.json").read_bytes(), sorted(run.glob("kept/*"))
    inputs = [str(_inputs(tmp_path / "in"))]

    with pytest.raises(CurationError, match="project"):  # Dataflow without --project
        run_curation(inputs, str(run), config_from_dict({}), ["--runner=DataflowRunner"],
                     overwrite=True)
    with pytest.raises(CurationError, match="matches no files"):
        run_curation([str(tmp_path / "none-*.jsonl")], str(run), config_from_dict({}),
                     overwrite=True)
    assert (run / "report.json").read_bytes() == report
    assert sorted(run.glob("kept/*")) == kept and kept

    # A bad file name is no failure: the run is replaced.
    replaced = run_curation(inputs, str(run), config_from_dict({}), overwrite=True)
    assert replaced["documents"]["quarantined"] == {"unreadable_file": 1}
    assert json.loads((run / "report.json").read_text())["documents"]["input"] == 3
