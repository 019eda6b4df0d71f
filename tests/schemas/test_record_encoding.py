"""How documents travel between Beam stages: pickled by Beam's default coder, with their text
zstd-compressed, so the local runner's buffers of them are smaller than the text. Every field
comes back equal, whatever the text holds, and equal records encode to equal bytes."""

import pickle

import pytest
from apache_beam.coders import FastPrimitivesCoder

from winnow.schemas.records import Document, Removed

PROSE = ("The kernel keeps a list of the devices it found at boot, and each driver registers "
         "the ones it handles. ") * 100  # 10 KB: repetitive like real technical prose

DOCUMENTS = [
    Document("a", PROSE, "in.jsonl", 3),
    Document("b", "héllo — naïve 中文 \U0001f600 and a lone surrogate \ud800.", "x/y.jsonl.gz", 0,
             {"language": "en", "language_score": 0.93, "pii_counts": {"EMAIL": 2}},
             {"license": "MIT", "tags": ["a", None], "year": 2020}),
    Document("", "", "", 0),
]


@pytest.mark.parametrize("doc", DOCUMENTS)
def test_records_come_back_equal_through_pickle_and_beams_coder(doc):
    removed = Removed.of(doc, "exact_dedup", "exact_duplicate", survivor_id="z")
    coder = FastPrimitivesCoder()
    for record in (doc, removed):
        assert pickle.loads(pickle.dumps(record, pickle.HIGHEST_PROTOCOL)) == record
        assert coder.decode(coder.encode(record)) == record
        assert coder.decode(coder.encode((b"key", [record, record]))) == (b"key",
                                                                            [record, record])


def test_equal_records_encode_to_equal_bytes():
    coder = FastPrimitivesCoder()
    for doc in DOCUMENTS:
        copy = Document(doc.id, "".join(list(doc.text)), doc.source, doc.position,
                        dict(doc.metadata), dict(doc.fields))
        assert coder.encode(copy) == coder.encode(doc)


def test_the_text_travels_compressed():
    doc = DOCUMENTS[0]
    text_bytes = len(doc.text.encode("utf-8"))
    assert len(FastPrimitivesCoder().encode(doc)) < 0.2 * text_bytes
    removed = Removed.of(doc, "heuristics", "too_short")
    assert len(FastPrimitivesCoder().encode(removed)) < 0.2 * text_bytes
