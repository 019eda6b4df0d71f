"""A corpus of broken inputs, with the fate of every record written down.

``write_bad_corpus(folder)`` creates the files and returns the expected quarantine reasons
(a Counter) and the number of records that must come out as documents (kept or removed).
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

GOOD_TEXT = (
    "The river that runs through the old town was once the main road for traders, and the "
    "stone bridge that crosses it is still the oldest building in the region. Visitors walk "
    "along the banks in the evening, and in the summer there are boats that take them to the "
    "lake at the end of the valley. The town council has kept the houses along the water in "
    "the style of the time when they were built, and a small museum tells the story of the "
    "families who lived and worked there for many generations."
)


def _jsonl(records: list) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n"
                    for r in records)


def write_bad_corpus(folder: Path) -> tuple[Counter, int]:
    folder.mkdir(parents=True, exist_ok=True)
    quarantined: Counter = Counter()
    documents = 0

    lines = [
        {"id": "good-1", "text": GOOD_TEXT},
        {"text": GOOD_TEXT + " A second copy without an id."},  # gets <file>:<index>
        b'{"id": "broken", "text": "no closing brace"',  # malformed_json
        {"id": "no-text", "body": "wrong field"},  # missing_text
        {"id": "number", "text": 42},  # text_not_string
        {"id": "null", "text": None},  # missing_text
        [1, 2, 3],  # not_an_object
        {"id": "empty", "text": ""},  # document, removed as empty
        {"id": "spaces", "text": "   \n\t  "},  # document, removed as empty
        b'{"id": "bad-utf8", "text": "caf\xe9 au lait"}',  # invalid_utf8
        {"id": "nul", "text": "before\x00after " + GOOD_TEXT},  # document; NUL stripped
        b'{"id": "surrogate", "text": "lone \\ud800 surrogate"}',  # invalid_unicode
    ]
    (folder / "mixed.jsonl").write_bytes(_jsonl(lines))
    quarantined.update(malformed_json=1, missing_text=2, text_not_string=1, not_an_object=1,
                       invalid_utf8=1, invalid_unicode=1)
    documents += 5

    # A 7 MB document and a 5 MB line without spaces: read, judged, never a crash. A 9 MB
    # line is over input.max_document_bytes (8 MB): quarantined without being parsed.
    huge = {"id": "huge", "text": (GOOD_TEXT + "\n") * (7_000_000 // len(GOOD_TEXT))}
    no_spaces = {"id": "no-spaces", "text": "x" * 5_000_000}
    too_large = {"id": "too-large", "text": "y" * 9_000_000}
    (folder / "big.jsonl").write_bytes(_jsonl([huge, too_large, no_spaces]))
    documents += 2
    quarantined.update(document_too_large=1)

    # A gzip file cut in the middle: the records before the cut survive, then one
    # truncated_file record.
    whole = gzip.compress(_jsonl([{"id": f"gz-{i}", "text": GOOD_TEXT} for i in range(50)]))
    (folder / "truncated.jsonl.gz").write_bytes(whole[: len(whole) * 2 // 3])
    quarantined.update(truncated_file=1)
    documents += _records_before_truncation(whole[: len(whole) * 2 // 3])

    # Binary bytes under a .jsonl name: every "line" is quarantined, as invalid UTF-8 or,
    # for the first run of bytes below 0x0a, as malformed JSON.
    binary = bytes(range(256)) * 8
    (folder / "binary.jsonl").write_bytes(binary)
    for line in binary.split(b"\n"):
        if line.strip():
            quarantined["malformed_json" if line.isascii() else "invalid_utf8"] += 1

    (folder / "empty.jsonl").write_bytes(b"")

    table = pa.table({"id": ["pq-1", "pq-2", "pq-3"], "text": [GOOD_TEXT, None, "short"]})
    pq.write_table(table, folder / "table.parquet")
    quarantined.update(missing_text=1)
    documents += 2

    (folder / "not-really.parquet").write_bytes(b"PAR1 this is not parquet")
    quarantined.update(unreadable_file=1)

    (folder / "note.txt").write_text(GOOD_TEXT, encoding="utf-8")
    documents += 1
    return quarantined, documents


def _records_before_truncation(data: bytes) -> int:
    decompressor = __import__("zlib").decompressobj(16 + 15)
    text = decompressor.decompress(data)
    return text.count(b"\n")
