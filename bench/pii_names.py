"""What redacting ids, file names and fields costs (``filters.pii_names``), outside Beam: the
kept/ rows of a corpus built without and with a ``NameRedactor``, as the writers build them.

    python bench/pii_names.py ../shared/corpora/{linux-doc,python-doc,perl-doc}.jsonl.gz

Times are the fewest CPU seconds of ``--repeat`` builds of every row in this process (one core),
so they hold up on a busy machine. It also counts the rows whose id, input file or fields the
redaction changed.
"""

from __future__ import annotations

import argparse
import functools

from fields import best_of  # bench/ is the script's folder

from winnow.filters.pii import PiiConfig
from winnow.filters.pii_names import NameRedactor
from winnow.pipeline.readers import InputConfig, read_records
from winnow.pipeline.writers import kept_row
from winnow.schemas.records import Document


def measure(paths: list[str], repeat: int) -> dict[str, float]:
    docs = [record for path in paths for record in read_records(path, InputConfig())
            if isinstance(record, Document)]
    plain_s, plain = best_of(repeat, lambda: [kept_row(doc) for doc in docs])

    def redacted_rows():
        # A new redactor each time, as each worker starts with an empty cache.
        to_row = functools.partial(kept_row, names=NameRedactor(PiiConfig(), paths))
        return [to_row(doc) for doc in docs]

    redacted_s, redacted = best_of(repeat, redacted_rows)
    changed = sum(a != b for a, b in zip(plain, redacted, strict=True))
    return {"documents": len(docs), "rows_s": plain_s, "redacted_rows_s": redacted_s,
            "extra_us_per_document": 1e6 * (redacted_s - plain_s) / max(1, len(docs)),
            "rows_changed": changed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for key, value in measure(args.inputs, args.repeat).items():
        print(f"{key}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}")


if __name__ == "__main__":
    main()
