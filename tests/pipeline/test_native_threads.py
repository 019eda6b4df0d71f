"""Commands leave no native thread running when they return.

pyarrow's C++ thread pools, once started, are still alive at interpreter exit, and tearing them
down then can abort the process after its work is done ("terminate called without an active
exception", exit -6: CI saw it at the end of `winnow curate`, whose dataset card reads kept/
back). schemas/parquet.py reads Parquet on the calling thread, so no pool starts. Checked as the
process's thread list (/proc/self/task) before and after commands that read Parquet: a Parquet
input, the card's licence column, the report's examples of a reason."""

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.pipeline.bad_inputs import GOOD_TEXT

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")

SCRIPT = """
import json, os, sys
import apache_beam, numpy, pyarrow.parquet  # threads their imports start are not the run's
from winnow.cli import main

def threads():
    return {tid: Path(f"/proc/self/task/{tid}/comm").read_text().strip()
            for tid in os.listdir("/proc/self/task")}

from pathlib import Path
before = threads()
codes = [main(["curate", sys.argv[1], "--output", sys.argv[2], "--config", sys.argv[3],
               "--no-progress"]),
         main(["report", sys.argv[2], "--reason", "too_few_words"])]
after = threads()
print(json.dumps({"codes": codes, "new": {t: n for t, n in after.items() if t not in before}}))
"""


def test_curate_and_report_start_no_thread_that_outlives_them(tmp_path):
    rows = [{"id": f"doc-{n}", "text": GOOD_TEXT.replace("river", f"river {n}"),
             "license": "CC-BY-4.0"} for n in range(6)]
    rows.append({"id": "short", "text": "far too short", "license": "MIT"})
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in.parquet")
    config = tmp_path / "config.yaml"
    config.write_text("shards:\n  enabled: false\n")

    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "in.parquet"), str(tmp_path / "run"),
         str(config)], capture_output=True, text=True, check=False)

    assert completed.returncode == 0, completed.stderr[-2000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["codes"] == [0, 0]
    assert result["new"] == {}
    card = (tmp_path / "run" / "README.md").read_text()
    assert "CC-BY-4.0" in card  # the licence column was read back from kept/
