"""What credentials cost a command on gs://: wall time of ``winnow report gs://RUN`` (Beam's
filesystems) and ``winnow shards stats gs://RUN`` (schemas.storage) against the local Cloud
Storage emulator, each a fresh process, under three environments:

- ``emulator only``: ``STORAGE_EMULATOR_HOST`` and nothing else (no credentials anywhere);
- ``+ NO_GCE_CHECK``: also ``NO_GCE_CHECK=true`` (google-auth skips the metadata server);
- ``test fixture``: also a service-account file whose token endpoint is a local server
  (``tests/gcs_emulator.py``, what the tests use).

    pip install -e '.[test]'   # gcp-storage-emulator
    python bench/gcs_credentials.py [--repeats 2]

The run folder curated is examples/sample/extra.jsonl (six documents). ``HOME`` points at an empty
folder so no gcloud credentials of this machine are found. Best of ``--repeats`` per cell.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.gcs_emulator import start_emulator, stop_emulator  # noqa: E402


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "winnow", *command], env=env, check=True,
                   capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        subprocess.run([sys.executable, "-m", "winnow", "curate",
                        str(ROOT / "examples" / "sample" / "extra.jsonl"), "--output",
                        str(base / "run")], check=True, capture_output=True)
        emulator, tokens = start_emulator(base)
        try:
            run = emulator.upload(base / "run", "runs/r")
            clean = {k: v for k, v in os.environ.items()
                     if k not in emulator.env and not k.startswith(("GOOGLE_", "CLOUDSDK_"))}
            clean["HOME"] = str(base)
            environments = {
                "emulator only": {"STORAGE_EMULATOR_HOST": emulator.host},
                "+ NO_GCE_CHECK": {"STORAGE_EMULATOR_HOST": emulator.host,
                                   "NO_GCE_CHECK": "true"},
                "test fixture": emulator.env,
            }
            for command in (["report", run], ["shards", "stats", run]):
                for name, extra in environments.items():
                    best = min(timed(command, {**clean, **extra}) for _ in range(args.repeats))
                    print(f"winnow {' '.join(command[:-1]):14} {name:16} {best:6.1f} s",
                          flush=True)
        finally:
            stop_emulator(emulator, tokens)


if __name__ == "__main__":
    main()
