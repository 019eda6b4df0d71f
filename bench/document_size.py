"""Peak memory of a curation run holding one very large document, with and without the
reader's limit (``input.max_document_bytes``).

    python bench/document_size.py ../shared/corpora/linux-doc.jsonl.gz --mb 45
    python bench/document_size.py ../shared/corpora/linux-doc.jsonl.gz --mb 45 --no-limit

The document is the corpus's texts joined (real prose, not one repeated line), cut to ``--mb``
million bytes of JSONL line, written with one small document beside it; ``--mb 0`` writes only
the small one (the baseline). The run is ``python -m winnow curate`` with the default config in
a child process; the figure is the child's peak resident set (``getrusage(RUSAGE_CHILDREN)``:
the largest of the launcher and the Beam workers it waited for), so run one figure per call.
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path


def write_input(corpus: str, megabytes: float, folder: Path) -> Path:
    """A JSONL file: a document of ``megabytes`` million bytes (as a line), then a small one."""
    with gzip.open(corpus, "rt", encoding="utf-8") as handle:
        texts = [json.loads(line)["text"] for line in handle]
    path = folder / "in.jsonl"
    with path.open("w", encoding="utf-8") as out:
        if megabytes:
            size = int(megabytes * 1_000_000)
            text = "\n\n".join(texts)
            text = (text * (size // len(text) + 1))[:size]
            while len(json.dumps({"id": "huge", "text": text}).encode()) > size:
                text = text[: len(text) * 999 // 1000]  # JSON escapes made the line longer
            out.write(json.dumps({"id": "huge", "text": text}) + "\n")
        out.write(json.dumps({"id": "small", "text": texts[0]}) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", help="a .jsonl.gz corpus whose texts make the document")
    parser.add_argument("--mb", type=float, default=45.0, help="document size in MB (1e6 B)")
    parser.add_argument("--no-limit", action="store_true",
                        help="input.max_document_bytes: 0 (no limit), as before the limit")
    parser.add_argument("--no-heuristics", action="store_true",
                        help="heuristics.enabled: false, so the document reaches every stage")
    args, beam_args = parser.parse_known_args()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        path = write_input(args.corpus, args.mb, folder)
        command = [sys.executable, "-m", "winnow", "curate", str(path),
                   "--output", str(folder / "run"), *beam_args]
        config = ("input: {max_document_bytes: 0}\n" if args.no_limit else "") + (
            "heuristics: {enabled: false}\n" if args.no_heuristics else "")
        (folder / "config.yaml").write_text(config)
        command += ["--config", str(folder / "config.yaml")]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        report = json.loads((folder / "run" / "report.json").read_text())
        line_bytes = len(path.read_bytes().split(b"\n")[0]) if args.mb else 0
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"document line {line_bytes:,} bytes, "
          f"limit {'off' if args.no_limit else 'default'}"
          f"{', heuristics off' if args.no_heuristics else ''}: peak RSS {peak_mb:,.0f} MB; "
          f"documents {report['documents']}")


if __name__ == "__main__":
    main()
