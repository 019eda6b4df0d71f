import dataclasses
import io
import json
import os
import pickle
import random

import numpy as np
import pytest
import sentencepiece

from tests.tiny_tokenizer import train_tokenizer
from winnow.schemas.shard_format import (
    INDEX_DTYPE,
    MANIFEST_FILE,
    DocumentRef,
    ExampleProvenance,
    ShardInfo,
    ShardManifest,
    encode_shard,
    encode_shard_columns,
    sha256_bytes,
    sha256_file,
    shard_info,
    shard_prefix,
    special_tokens_from_model,
    token_dtype,
)
from winnow.schemas.shard_reader import ShardReader, decode_examples, read_documents, shard_stats
from winnow.schemas.shard_verify import verify_shards


def ref(doc_id: str, position: int = 0, input_file: str = "in.jsonl") -> DocumentRef:
    return DocumentRef(doc_id, input_file, position)


# Three shards of literal examples: (A, B, label), ids < 100 (the tiny tokenizer's vocabulary),
# and per example (A's document, B's document). Ids repeat across input files and positions.
TWIN_A, TWIN_B = ref("twin", 4, "a.jsonl"), ref("twin", 0, "b.jsonl")
SHARDS = [
    (
        [([10, 11, 12], [13, 14], 0), ([15], [16, 17, 18, 19], 1), ([20, 21], [22], 0)],
        [(ref("doc-b"), ref("doc-b")), (ref("doc-a"), ref("doc-c", 3)),
         (ref("doc-b"), ref("doc-b"))],
    ),
    (
        [([30, 31, 32, 33, 34], [35, 36, 37], 1), ([40], [41], 1)],
        [(TWIN_B, TWIN_A), (TWIN_A, TWIN_B)],
    ),
    (
        [([50, 51], [52, 53], 0), ([60, 61, 62], [63], 0), ([70], [71, 72], 1),
         ([80, 81, 82, 83], [84, 85, 86, 87, 88, 89, 90, 91, 92, 93], 0)],
        [(ref("doc-d"), ref("doc-d")), (ref("doc\nwith newline"), ref("doc\nwith newline")),
         (ref("doc\\slash"), ref("lone \ud800 surrogate, é")),
         (ref("doc-d"), ref("doc-d"))],
    ),
]
ALL_EXAMPLES = [example for examples, _ in SHARDS for example in examples]
D = ref("d")
ALL_DOCUMENTS = [pair for _, documents in SHARDS for pair in documents]
MAX_SEQ_LEN = 20
FILES = [MANIFEST_FILE, "tokenizer.model"] + [
    f"{shard_prefix(i)}.{suffix}" for i in range(len(SHARDS))
    for suffix in ("tokens.bin", "index.npy", "documents.jsonl", "provenance.npy")]


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory) -> bytes:
    return train_tokenizer(tmp_path_factory.mktemp("spm"))


def write_set(directory, shards, tokenizer_bytes, *, vocab_size=None, tamper=None,
              objective="sop", max_seq_len=MAX_SEQ_LEN):
    """A shard folder written plainly; ``tamper(number, encoded)`` may change a shard's bytes
    after its manifest entry was computed (its hashes are taken from the changed bytes, as a
    buggy writer would)."""
    os.makedirs(directory, exist_ok=True)
    if vocab_size is None:
        processor = sentencepiece.SentencePieceProcessor(model_proto=tokenizer_bytes)
        vocab_size = processor.get_piece_size()
        special = special_tokens_from_model(tokenizer_bytes)
    else:
        special = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4}
    infos = []
    for number, (examples, documents) in enumerate(shards):
        prefix = shard_prefix(number)
        encoded = encode_shard(examples, documents, vocab_size, max_seq_len=max_seq_len)
        tokens = sum(len(a) + len(b) for a, b, _ in examples)
        info = shard_info(prefix, encoded, len(examples), tokens, len(set(sum(documents, ()))))
        if tamper is not None:
            encoded = tamper(number, dict(encoded))
            info = dataclasses.replace(info, files={
                f"{prefix}.{suffix}": sha256_bytes(data) for suffix, data in encoded.items()})
        for suffix, data in encoded.items():
            with open(os.path.join(directory, f"{prefix}.{suffix}"), "wb") as handle:
                handle.write(data)
        infos.append(info)
    with open(os.path.join(directory, "tokenizer.model"), "wb") as handle:
        handle.write(tokenizer_bytes)
    manifest = ShardManifest.create(
        objective=objective, max_seq_len=max_seq_len, vocab_size=vocab_size,
        tokenizer_file="tokenizer.model", tokenizer_sha256=sha256_bytes(tokenizer_bytes),
        special_tokens=special, shards=infos)
    with open(os.path.join(directory, MANIFEST_FILE), "w") as handle:
        handle.write(manifest.to_json())
    return manifest


@pytest.fixture
def shard_dir(tmp_path, tokenizer):
    directory = tmp_path / "shards"
    write_set(directory, SHARDS, tokenizer)
    return directory


def problems_naming(problems, name):
    return [problem for problem in problems if problem.startswith(name + ":")]


def replace_npy(encoded, change, suffix="index.npy"):
    rows = np.load(io.BytesIO(encoded[suffix])).copy()
    change(rows)
    buffer = io.BytesIO()
    np.save(buffer, rows)
    encoded[suffix] = buffer.getvalue()
    return encoded


# --- format and encoder ------------------------------------------------------------------------

def test_token_dtype_follows_the_vocabulary_size():
    assert token_dtype(32_000) == np.dtype("<u2")
    assert token_dtype(65_536) == np.dtype("<u2")
    assert token_dtype(65_537) == np.dtype("<u4")
    assert token_dtype(250_000) == np.dtype("<u4")
    with pytest.raises(ValueError):
        token_dtype(0)
    assert shard_prefix(7) == "shard-00007"


def test_encode_is_byte_deterministic_and_numpy_compatible():
    examples, documents = SHARDS[2]
    first = encode_shard(examples, documents, 100)
    assert first == encode_shard(list(examples), [tuple(pair) for pair in documents], 100)
    assert set(first) == {"tokens.bin", "index.npy", "documents.jsonl", "provenance.npy"}
    for suffix in ("index.npy", "provenance.npy"):
        rows = np.load(io.BytesIO(first[suffix]))
        buffer = io.BytesIO()
        np.save(buffer, rows)
        assert buffer.getvalue() == first[suffix]  # the header is numpy's own
    rows = np.load(io.BytesIO(first["index.npy"]))
    assert rows.dtype == INDEX_DTYPE and INDEX_DTYPE.itemsize == 17
    assert rows["offset"].tolist() == [0, 4, 8, 11]
    assert rows["length"].tolist() == [4, 4, 3, 14]
    assert rows["length_a"].tolist() == [2, 3, 1, 4]
    assert rows["label"].tolist() == [0, 0, 1, 0]
    tokens = np.frombuffer(first["tokens.bin"], dtype="<u2")
    assert tokens.tolist() == [t for a, b, _ in examples for t in (*a, *b)]
    # the documents, sorted by (id, input file, position) by code point, one JSON object a line
    assert first["documents.jsonl"].decode("ascii").split("\n") == [
        '{"id":"doc\\nwith newline","input_file":"in.jsonl","input_position":0}',
        '{"id":"doc-d","input_file":"in.jsonl","input_position":0}',
        '{"id":"doc\\\\slash","input_file":"in.jsonl","input_position":0}',
        '{"id":"lone \\ud800 surrogate, \\u00e9","input_file":"in.jsonl","input_position":0}',
        ""]
    # per example, the lines of A's and B's document
    provenance = np.load(io.BytesIO(first["provenance.npy"]))
    assert provenance.dtype == np.dtype("<u4") and provenance.shape == (4, 2)
    assert provenance.tolist() == [[1, 1], [0, 0], [2, 3], [1, 1]]
    numpy_input = [(np.array(a, dtype=np.int32), np.array(b), label) for a, b, label in examples]
    assert encode_shard(numpy_input, documents, 100) == first


def test_document_refs_serialize_to_one_canonical_line_and_back():
    for doc_id in ("plain", "a\nb", "a\rb\\n", "back\\slash", "lone \ud800 surrogate", "",
                   "日本語", "tab\there"):
        document = DocumentRef(doc_id, "dir/in file.jsonl.gz", 12)
        line = document.to_json()
        assert line.isascii() and "\n" not in line and "\r" not in line
        assert DocumentRef.from_json(line) == document
        assert DocumentRef.from_json(line.encode("ascii")) == document
    for bad in ('{"id":"x","input_file":"f"}', '{"input_file":"f","id":"x","input_position":0}',
                '{"id":"x","input_file":"f","input_position":-1}',
                '{"id":"x","input_file":"f","input_position":1.0}',
                '{"id":1,"input_file":"f","input_position":0}', '["x","f",0]', "not json"):
        with pytest.raises(ValueError):
            DocumentRef.from_json(bad)


@pytest.mark.parametrize("examples, documents, vocab, message", [
    ([], [], 100, "at least one example"),
    ([([], [1], 0)], [(D, D)], 100, "segment A is empty"),
    ([([1], [], 0)], [(D, D)], 100, "segment B is empty"),
    ([([1], [2], 2)], [(D, D)], 100, "label"),
    ([([1], [100], 0)], [(D, D)], 100, "outside"),
    ([([-1], [2], 0)], [(D, D)], 100, "outside"),
    ([([1.5], [2], 0)], [(D, D)], 100, "not an integer"),
    ([([1], [70_000], 0)], [(D, D)], 70_000, "outside"),
    ([([1], [65_536], 0)], [(D, D)], 100, "outside"),
    ([([1], [2], 0)], [], 100, "1 examples but 0 rows of provenance"),
    ([([1], [2], 0)], [(D, D), (D, D)], 100, "1 examples but 2 rows of provenance"),
    ([([1], [2], 0)], [(D,)], 100, "per example"),
    ([([1], [2], 0)], [(D, "d")], 100, "a document ref is"),
    ([([1], [2], 0)], [(D, ("d", "f", -1))], 100, "a document ref is"),
    ([(list(range(10)), list(range(8)), 0)], [(D, D)], 100, "max_seq_len - 3"),
])
def test_encode_refuses_what_the_format_cannot_hold(examples, documents, vocab, message):
    with pytest.raises(ValueError, match=message):
        encode_shard(examples, documents, vocab, max_seq_len=20)


def columns(examples):
    """Rows -> the columns ``encode_shard_columns`` takes (uint32 ids, as ``ExampleBlock``)."""
    tokens = np.array([t for a, b, _ in examples for t in (*a, *b)], dtype=np.uint32)
    lengths_a = np.array([len(a) for a, _, _ in examples], dtype=np.int64)
    lengths = np.array([len(a) + len(b) for a, b, _ in examples], dtype=np.int64)
    labels = np.array([label for _, _, label in examples], dtype=np.uint8)
    return tokens, lengths_a, lengths, labels


@pytest.mark.parametrize("vocab_size", [100, 70_000])
def test_columns_encode_the_same_bytes_as_rows(vocab_size):
    rng = random.Random(vocab_size)
    examples = [([rng.randrange(vocab_size) for _ in range(rng.randint(1, 30))],
                 [rng.randrange(vocab_size) for _ in range(rng.randint(1, 30))],
                 rng.randint(0, 1)) for _ in range(500)]
    pool = [ref(f"doc-{rng.randrange(100)}", rng.randrange(3)) for _ in range(60)]
    documents = [(rng.choice(pool), rng.choice(pool)) for _ in examples]
    for shard_examples, shard_documents in [*SHARDS, (examples, documents)]:
        if vocab_size == 70_000 or max(max(a + b) for a, b, _ in shard_examples) < vocab_size:
            # the documents in any order, with repeats and unused ones: the same bytes
            table = sorted(set(pool) | set(sum(shard_documents, ())), reverse=True) + [D]
            provenance = [[table.index(a), table.index(b)] for a, b in shard_documents]
            assert encode_shard_columns(*columns(shard_examples), table, np.array(provenance),
                                        vocab_size, max_seq_len=64) == \
                encode_shard(shard_examples, shard_documents, vocab_size, max_seq_len=64)


@pytest.mark.parametrize("examples, provenance, vocab, message", [
    ([], [], 100, "at least one example"),
    ([([1, 2], [3], 0), ([], [1], 0)], [[0, 0]] * 2, 100, "example 1: segment A is empty"),
    ([([1], [], 0)], [[0, 0]], 100, "example 0: segment B is empty"),
    ([([1], [2], 0), ([1], [2], 2)], [[0, 0]] * 2, 100, "example 1: label must be 0 or 1, got 2"),
    ([([1], [100], 0)], [[0, 0]], 100, "token id 100 outside"),
    ([([1], [65_536], 0)], [[0, 0]], 100, "outside"),
    ([([1], [2], 0)], np.zeros((0, 2), int), 100, "1 examples but 0 rows of provenance"),
    ([([1], [2], 0)], [[0, 1]], 100, "outside the 1 given"),
    ([([1], [2], 0)], [[0, -1]], 100, "outside the 1 given"),
    ([([1], [2], 0)], [[0, 0, 0]], 100, r"shape \(examples, 2\)"),
    ([([1], [2], 0)], [[0.0, 0.0]], 100, "integers"),
    ([(list(range(10)), list(range(8)), 0)], [[0, 0]], 100, "example 0: 18 tokens > max_seq_len"),
])
def test_columns_refuse_what_the_format_cannot_hold(examples, provenance, vocab, message):
    with pytest.raises(ValueError, match=message):
        encode_shard_columns(*columns(examples), [D], np.array(provenance), vocab, max_seq_len=20)
    tokens, lengths_a, lengths, labels = columns([([1], [2], 0)])
    provenance = np.zeros((1, 2), np.uint32)
    with pytest.raises(ValueError, match="add up to 2 ids, tokens holds 3"):
        encode_shard_columns(np.array([1, 2, 3], np.uint32), lengths_a, lengths, labels, [D],
                             provenance, 100)
    with pytest.raises(ValueError, match="unsigned"):
        encode_shard_columns(tokens.astype(np.int64), lengths_a, lengths, labels, [D],
                             provenance, 100)


def test_shard_info_checks_the_counts_against_the_bytes():
    examples, documents = SHARDS[0]
    encoded = encode_shard(examples, documents, 100)
    info = shard_info("shard-00000", encoded, 3, 13, 3)  # doc-a, doc-b and doc-c (a B only)
    assert info.label_counts == {0: 2, 1: 1}
    assert info.files["shard-00000.tokens.bin"] == sha256_bytes(encoded["tokens.bin"])
    assert info.files["shard-00000.provenance.npy"] == sha256_bytes(encoded["provenance.npy"])
    assert ShardInfo.from_json(info.to_json()) == info
    for wrong in ((4, 13, 3), (3, 12, 3), (3, 13, 2)):
        with pytest.raises(ValueError):
            shard_info("shard-00000", encoded, *wrong)


# --- reader ------------------------------------------------------------------------------------

def test_examples_round_trip_exactly(shard_dir):
    reader = ShardReader(shard_dir, verify=True)
    assert len(reader) == len(ALL_EXAMPLES) == reader.manifest.examples
    assert reader.manifest.token_dtype == "uint16"
    for i, (a, b, label) in enumerate(ALL_EXAMPLES):
        got_a, got_b, got_label = reader.example(i)
        assert got_a.tolist() == a and got_b.tolist() == b and got_label == label
        assert got_a.dtype == np.dtype("<u2") and not got_a.flags.writeable
    order = list(range(len(ALL_EXAMPLES)))
    random.Random(1).shuffle(order)
    batch = reader.batch(order + [-1])
    for i, (a, b, label) in zip(order + [len(ALL_EXAMPLES) - 1], batch, strict=True):
        assert (a.tolist(), b.tolist(), label) == ALL_EXAMPLES[i]
    assert reader[-1][1].tolist() == ALL_EXAMPLES[-1][1]
    assert reader.lengths().tolist() == [len(a) + len(b) for a, b, _ in ALL_EXAMPLES]
    with pytest.raises(IndexError):
        reader.example(len(ALL_EXAMPLES))
    with pytest.raises(IndexError):
        reader.batch([0, len(ALL_EXAMPLES)])


def test_the_reader_pickles_without_the_mapped_data(shard_dir):
    reader = ShardReader(shard_dir)
    reader.batch(range(len(reader)))
    reader.provenance(5)
    clone = pickle.loads(pickle.dumps(reader))
    assert clone._maps == {} and clone._provenance == {}
    assert clone.example(5)[0].tolist() == ALL_EXAMPLES[5][0]
    assert clone.provenance(5) == ALL_DOCUMENTS[5]


def test_every_example_traces_back_to_its_documents(shard_dir):
    reader = ShardReader(shard_dir)
    for i, (document_a, document_b) in enumerate(ALL_DOCUMENTS):
        assert reader.provenance(i) == ExampleProvenance(document_a, document_b)
    # the random B of example 1 comes from doc-c, which no A in the shard comes from
    assert reader.provenance(1) == (ref("doc-a"), ref("doc-c", 3))
    assert reader.provenance(1).b.input_position == 3
    # the same id from two input files: two documents
    assert reader.provenance(3) == (TWIN_B, TWIN_A)
    assert reader.provenance(-1) == ALL_DOCUMENTS[-1]
    with pytest.raises(IndexError):
        reader.provenance(len(ALL_DOCUMENTS))
    # each shard lists exactly the documents its examples came from, A's and B's
    for number, (_, documents) in enumerate(SHARDS):
        listed = read_documents(shard_dir / f"{shard_prefix(number)}.documents.jsonl")
        assert listed == sorted(set(sum(documents, ())))
        assert reader.manifest.shards[number].documents == len(listed)


def test_ids_above_uint16_survive_with_uint32(tmp_path):
    vocab = 100_000
    shards = [([([65_535, 65_536], [99_999], 0), ([70_000], [1, 2], 1)], [(D, D)] * 2),
              ([([0], [65_537, 80_000, 3], 1)], [(D, ref("e"))])]
    manifest = write_set(tmp_path / "big", shards, b"not a real model", vocab_size=vocab)
    assert manifest.token_dtype == "uint32"
    assert os.path.getsize(tmp_path / "big" / "shard-00000.tokens.bin") == 4 * 6
    reader = ShardReader(tmp_path / "big")
    expected = [example for examples, _ in shards for example in examples]
    got = [(a.tolist(), b.tolist(), label) for a, b, label in reader.batch(range(3))]
    assert got == expected
    assert reader.example(0)[0].dtype == np.dtype("<u4")
    # The only complaint of the verifier is the fake tokenizer.
    assert all(p.startswith("tokenizer.model:") for p in verify_shards(tmp_path / "big"))


def test_the_manifest_and_dtype_must_agree(shard_dir):
    text = (shard_dir / MANIFEST_FILE).read_text()
    obj = json.loads(text)
    obj["token_dtype"] = "uint32"
    with pytest.raises(ValueError, match="token_dtype"):
        ShardManifest.from_json(json.dumps(obj))


def test_manifest_errors_name_the_field(shard_dir):
    obj = json.loads((shard_dir / MANIFEST_FILE).read_text())
    del obj["vocab_size"]
    obj["objective"] = "mlm"
    obj["shards"][1]["examples"] = "two"
    obj["extra"] = 1
    with pytest.raises(ValueError) as raised:
        ShardManifest.from_json(json.dumps(obj))
    message = str(raised.value)
    for expected in ("vocab_size: missing", "shards[1].examples: expected an integer",
                     "extra: unknown field"):
        assert expected in message
    manifest = ShardManifest.from_json((shard_dir / MANIFEST_FILE).read_bytes())
    assert ShardManifest.from_json(manifest.to_json()) == manifest
    obj = json.loads(manifest.to_json())
    obj["objective"] = "nsp"
    with pytest.raises(ValueError, match="manifest_sha256"):
        ShardManifest.from_json(json.dumps(obj))


# --- verifier ----------------------------------------------------------------------------------

def test_a_good_set_verifies(shard_dir):
    assert verify_shards(shard_dir) == []
    assert sorted(os.listdir(shard_dir)) == sorted(FILES)
    manifest = ShardManifest.from_json((shard_dir / MANIFEST_FILE).read_text())
    assert manifest.files == {"tokenizer.model": sha256_file(shard_dir / "tokenizer.model")}
    assert manifest.label_counts == {0: 5, 1: 4}


@pytest.mark.parametrize("where", ["first", "middle", "last"])
@pytest.mark.parametrize("name", FILES)
def test_one_flipped_byte_is_reported_against_its_file(shard_dir, name, where):
    path = shard_dir / name
    data = bytearray(path.read_bytes())
    position = {"first": 0, "middle": len(data) // 2, "last": len(data) - 1}[where]
    data[position] ^= 0x01
    path.write_bytes(bytes(data))
    problems = verify_shards(shard_dir)
    assert problems_naming(problems, name), problems


def test_a_valid_looking_manifest_edit_is_caught(shard_dir):
    path = shard_dir / MANIFEST_FILE
    path.write_text(path.read_text().replace(f'"max_seq_len": {MAX_SEQ_LEN}',
                                             f'"max_seq_len": {MAX_SEQ_LEN + 1}'))
    problems = verify_shards(shard_dir)
    assert problems == [
        "manifest.json: manifest_sha256: does not match the manifest's content (edited or "
        "corrupted)"]


def test_a_reformatted_manifest_is_not_canonical(shard_dir):
    path = shard_dir / MANIFEST_FILE
    path.write_text(json.dumps(json.loads(path.read_text())))  # same content, other layout
    assert ShardManifest.from_json(path.read_text()).examples == 9
    problems = verify_shards(shard_dir)
    assert len(problems) == 1 and "canonical" in problems_naming(problems, MANIFEST_FILE)[0]


def test_a_truncated_tokens_file(shard_dir):
    path = shard_dir / "shard-00001.tokens.bin"
    path.write_bytes(path.read_bytes()[:-2])
    problems = problems_naming(verify_shards(shard_dir), "shard-00001.tokens.bin")
    assert any("bytes, expected 10 tokens of uint16 = 20 bytes" in p for p in problems)
    reader = ShardReader(shard_dir)
    assert reader.example(0)[0].tolist() == ALL_EXAMPLES[0][0]
    with pytest.raises(ValueError, match="shard-00001.tokens.bin"):
        reader.example(3)
    with pytest.raises(ValueError, match="failed verification"):
        ShardReader(shard_dir, verify=True)


def test_a_token_id_outside_the_vocabulary(tmp_path, tokenizer):
    def tamper(number, encoded):
        if number == 1:
            encoded["tokens.bin"] = (100).to_bytes(2, "little") + encoded["tokens.bin"][2:]
        return encoded

    write_set(tmp_path, SHARDS, tokenizer, tamper=tamper)
    assert verify_shards(tmp_path) == [
        "shard-00001.tokens.bin: token id 100 >= vocab_size 100"]


@pytest.mark.parametrize("change, message", [
    (lambda rows: rows["label"].__setitem__(1, 2), "row 1: label 2 not in {0, 1}"),
    (lambda rows: rows["length_a"].__setitem__(2, 0), "row 2: length_a 0: segment A is empty"),
    (lambda rows: rows["length_a"].__setitem__(0, 4), "row 0: length_a 4 >= length 4"),
    (lambda rows: rows["offset"].__setitem__(3, 10), "row 3: offset 10 is not where"),
    (lambda rows: rows["offset"].__setitem__(3, 20), "runs past the 25 tokens"),
    (lambda rows: rows["length"].__setitem__(3, 18), "row 3: length 18 > max_seq_len - 3"),
])
def test_bad_index_rows(tmp_path, tokenizer, change, message):
    def tamper(number, encoded):
        return replace_npy(encoded, change) if number == 2 else encoded

    write_set(tmp_path, SHARDS, tokenizer, tamper=tamper)
    problems = verify_shards(tmp_path)
    assert problems and all(p.startswith("shard-00002.index.npy:") for p in problems), problems
    assert any(message in p for p in problems), problems


def test_unlisted_and_missing_files(shard_dir):
    (shard_dir / "shard-00003.tokens.bin").write_bytes(b"\x00\x01")
    (shard_dir / "shard-00001.provenance.npy").unlink()
    (shard_dir / "shard-00002.documents.jsonl").unlink()
    problems = verify_shards(shard_dir)
    assert problems_naming(problems, "shard-00003.tokens.bin") == [
        "shard-00003.tokens.bin: not listed in manifest.json"]
    for name in ("shard-00001.provenance.npy", "shard-00002.documents.jsonl"):
        assert [p.split(" (")[0] for p in problems_naming(problems, name)] == [f"{name}: missing"]


def line(doc_id, position=0):
    return (ref(doc_id, position).to_json() + "\n").encode()


@pytest.mark.parametrize("documents, message", [
    (line("z") + line("doc-d") + line("doc-d", 1) + line("y"),
     "line 2: refs are not sorted and distinct"),
    (line("a") + line("a") + line("b") + line("c"), "line 2: refs are not sorted and distinct"),
    (line("a") + b'{"id": "b", "input_file": "in.jsonl", "input_position": 0}\n' + line("c")
     + line("d"), "line 2: not the canonical serialization"),
    (line("a") + b'{"id":"b"}\n' + line("c") + line("d"), "line 2: expected an object"),
    (line("a") + line("b") + b"not json\n" + line("d"), "line 3: not valid JSON"),
    (line("a") + line("b") + line("c"), "3 lines, the manifest says 4 documents"),
    (line("a") + line("b") + line("c") + line("d")[:-1], "the last line has no newline"),
])
def test_bad_documents_files(tmp_path, tokenizer, documents, message):
    def tamper(number, encoded):
        if number == 2:
            encoded["documents.jsonl"] = documents
        return encoded

    write_set(tmp_path, SHARDS, tokenizer, tamper=tamper)
    problems = verify_shards(tmp_path)
    assert problems and all(p.startswith("shard-00002.documents.jsonl: ") for p in problems)
    assert any(message in p for p in problems), problems


@pytest.mark.parametrize("change, message", [
    (lambda rows: rows.__setitem__((1, 1), 4),
     "row 1: names line 4, documents.jsonl has 4"),
    (lambda rows: rows.__setitem__((2, 1), 0),  # the only reference to line 3
     "no example names line 3 of documents.jsonl (1 lines unnamed)"),
])
def test_a_provenance_file_naming_the_wrong_lines(tmp_path, tokenizer, change, message):
    def tamper(number, encoded):
        return replace_npy(encoded, change, "provenance.npy") if number == 2 else encoded

    write_set(tmp_path, SHARDS, tokenizer, tamper=tamper)
    assert verify_shards(tmp_path) == [f"shard-00002.provenance.npy: {message}"]
    if "names line 4" in message:
        with pytest.raises(ValueError, match="row 1 names line 4"):
            ShardReader(tmp_path).provenance(6)


@pytest.mark.parametrize("provenance, message", [
    (np.zeros((4, 2), np.int32), "not the .npy 1.0 header of 4 rows of two <u4"),
    (np.zeros((4, 3), np.uint32), "not the .npy 1.0 header of 4 rows of two <u4"),
    (np.array([[0, 0], [1, 1], [2, 3]], np.uint32), "not the .npy 1.0 header of 4 rows"),
])
def test_a_provenance_file_of_the_wrong_shape(tmp_path, tokenizer, provenance, message):
    def tamper(number, encoded):
        if number == 2:
            buffer = io.BytesIO()
            np.save(buffer, provenance)
            encoded["provenance.npy"] = buffer.getvalue()
        return encoded

    write_set(tmp_path, SHARDS, tokenizer, tamper=tamper)
    problems = verify_shards(tmp_path)
    assert len(problems) == 1 and message in problems_naming(
        problems, "shard-00002.provenance.npy")[0], problems
    with pytest.raises(ValueError, match="shard-00002.provenance.npy: holds"):
        ShardReader(tmp_path).provenance(5)


def test_a_truncated_provenance_file(shard_dir):
    path = shard_dir / "shard-00000.provenance.npy"
    path.write_bytes(path.read_bytes()[:-3])
    problems = problems_naming(verify_shards(shard_dir), "shard-00000.provenance.npy")
    assert any("sha256" in p for p in problems)
    assert any("5 bytes after the last whole row" in p for p in problems)
    assert any("2 rows, the manifest says 3 examples" in p for p in problems)


def test_shards_of_format_1_are_refused_by_name(shard_dir):
    obj = json.loads((shard_dir / MANIFEST_FILE).read_text())
    obj["format_version"] = 1
    for shard in obj["shards"]:  # format 1's files
        shard["files"] = {f"{shard['name']}.{suffix}": "0" * 64
                          for suffix in ("tokens.bin", "index.npy", "sources.txt")}
    (shard_dir / MANIFEST_FILE).write_text(json.dumps(obj))
    message = ("manifest.json: format_version: this reader knows 2, got 1 (format 1 named a "
               "shard's documents by id only, without per-example provenance: write the shards "
               "again)")
    assert verify_shards(shard_dir) == [message]


def test_special_tokens_must_match_the_tokenizer(tmp_path, tokenizer):
    manifest = write_set(tmp_path, SHARDS, tokenizer)
    special = dict(manifest.special_tokens)
    special["[MASK]"], special["[SEP]"] = special["[SEP]"], special["[MASK]"]
    edited = dataclasses.replace(manifest, special_tokens=special)
    (tmp_path / MANIFEST_FILE).write_text(edited.to_json())
    problems = verify_shards(tmp_path)
    assert problems and all(p.startswith("tokenizer.model:") for p in problems), problems
    assert any("[MASK] is id" in p for p in problems)


# --- inspection --------------------------------------------------------------------------------

def test_stats(shard_dir):
    stats = shard_stats(shard_dir)
    assert stats["examples"] == 9 and stats["shards"] == 3
    assert stats["tokens"] == sum(len(a) + len(b) for a, b, _ in ALL_EXAMPLES) == 48
    assert stats["label_counts"] == {"0": 5, "1": 4}
    assert stats["label_balance"] == pytest.approx(4 / 9)
    assert stats["mean_length"] == pytest.approx(48 / 9)
    assert stats["documents"] == 3 + 2 + 4
    histogram = stats["length_histogram"]
    assert histogram["bin_width"] == 16 and histogram["counts"] == [9, 0]
    assert [s["examples"] for s in stats["per_shard"]] == [3, 2, 4]
    assert stats["per_shard"][1]["label_counts"] == {"0": 0, "1": 2}
    json.dumps(stats)


def test_decoding_a_token_outside_the_vocabulary_names_the_example(tmp_path, tokenizer):
    def tamper(number, encoded):  # the first token of shard 1 (example 3) is out of range
        if number == 1:
            encoded["tokens.bin"] = (100).to_bytes(2, "little") + encoded["tokens.bin"][2:]
        return encoded

    write_set(tmp_path, SHARDS, tokenizer, tamper=tamper)
    assert len(list(decode_examples(tmp_path, 3))) == 3
    with pytest.raises(ValueError, match=r"^example 3 holds token id 100, outside the "
                                         r"tokenizer's 100 pieces: .*\(winnow shards verify"):
        list(decode_examples(tmp_path, 4))


def test_decode_examples_gives_back_the_text(tmp_path, tokenizer):
    processor = sentencepiece.SentencePieceProcessor(model_proto=tokenizer)
    pairs = [("the cat sat on a mat", "and dog ran far away", 0),
             ("birds sang over green hills", "fish swim slowly", 1)]
    examples = [(processor.encode(a), processor.encode(b), label) for a, b, label in pairs]
    documents = [(D, D), (D, TWIN_B)]
    write_set(tmp_path, [(examples, documents)], tokenizer, max_seq_len=64, objective="nsp")
    assert verify_shards(tmp_path) == []
    decoded = list(decode_examples(tmp_path, 5))
    assert [(d["segment_a"], d["segment_b"], d["label"]) for d in decoded] == pairs
    assert decoded[1]["index"] == 1 and decoded[0]["objective"] == "nsp"
    assert "document_a" not in decoded[0]
    assert [d["index"] for d in decode_examples(tmp_path, 1, start=1)] == [1]
    traced = list(decode_examples(tmp_path, 5, provenance=True))
    assert [(d["document_a"], d["document_b"]) for d in traced] == [
        ({"id": "d", "input_file": "in.jsonl", "input_position": 0},) * 2,
        ({"id": "d", "input_file": "in.jsonl", "input_position": 0},
         {"id": "twin", "input_file": "b.jsonl", "input_position": 0})]


def test_the_verifier_streams_across_chunk_boundaries(tmp_path, tokenizer, monkeypatch):
    from winnow.schemas import shard_verify

    monkeypatch.setattr(shard_verify, "_CHUNK_BYTES", 36)  # 2 rows, 18 ids, 36 source bytes
    rng = random.Random(3)
    examples = [([rng.randrange(100) for _ in range(rng.randint(1, 8))],
                 [rng.randrange(100) for _ in range(rng.randint(1, 8))], rng.randint(0, 1))
                for _ in range(41)]
    documents = [(ref(f"document number {i % 30}"), ref(f"document number {(i * 7) % 30}"))
                 for i in range(41)]
    big = [(examples, documents)]
    write_set(tmp_path / "good", big, tokenizer)
    assert verify_shards(tmp_path / "good") == []
    reader = ShardReader(tmp_path / "good")
    assert [reader.provenance(i) for i in range(41)] == documents

    def tamper_provenance(number, encoded):
        return replace_npy(encoded, lambda rows: rows.__setitem__((37, 0), 30), "provenance.npy")

    write_set(tmp_path / "bad-provenance", big, tokenizer, tamper=tamper_provenance)
    assert verify_shards(tmp_path / "bad-provenance") == [
        "shard-00000.provenance.npy: row 37: names line 30, documents.jsonl has 30"]

    def tamper(number, encoded):
        return replace_npy(encoded, lambda rows: rows["label"].__setitem__(37, 3))

    write_set(tmp_path / "bad", big, tokenizer, tamper=tamper)
    assert verify_shards(tmp_path / "bad") == [
        "shard-00000.index.npy: row 37: label 3 not in {0, 1}",
        "shard-00000.index.npy: label counts "
        f"{{0: {sum(e[2] == 0 for e in examples) - (examples[37][2] == 0)}, "
        f"1: {sum(e[2] == 1 for e in examples) - (examples[37][2] == 1)}}} "
        f"!= the manifest's {{0: {sum(e[2] == 0 for e in examples)}, "
        f"1: {sum(e[2] == 1 for e in examples)}}}"]


# --- packed (mlm) shards -------------------------------------------------------------------------

PACKED_DOCUMENTS = (ref("c"), ref("a"), ref("d"), ref("b"))  # use order, not sorted


def write_packed(directory, tokenizer_bytes, spans, lengths=(9, 6)) -> list[str]:
    """One mlm shard of ``len(lengths)`` packed examples over PACKED_DOCUMENTS; its problems."""
    os.makedirs(directory, exist_ok=True)
    special = special_tokens_from_model(tokenizer_bytes)
    vocab_size = sentencepiece.SentencePieceProcessor(model_proto=tokenizer_bytes).get_piece_size()
    lengths = np.array(lengths, np.int64)
    tokens = np.full(int(lengths.sum()), 50, np.uint32)
    encoded = encode_shard_columns(tokens, lengths, lengths, np.zeros(len(lengths), np.uint8),
                                   PACKED_DOCUMENTS, np.array(spans), vocab_size,
                                   max_seq_len=11, packed=True)
    info = shard_info("shard-00000", encoded, len(lengths), int(lengths.sum()),
                      len(PACKED_DOCUMENTS))
    for suffix, data in encoded.items():
        (directory / f"shard-00000.{suffix}").write_bytes(data)
    (directory / "tokenizer.model").write_bytes(tokenizer_bytes)
    manifest = ShardManifest.create(
        objective="mlm", max_seq_len=11, vocab_size=vocab_size, tokenizer_file="tokenizer.model",
        tokenizer_sha256=sha256_bytes(tokenizer_bytes), special_tokens=special, shards=[info])
    (directory / MANIFEST_FILE).write_text(manifest.to_json())
    return verify_shards(directory)


def test_a_packed_example_lists_every_document_it_holds(tmp_path, tokenizer):
    # example 0 packs c, a (wholly inside) and d (cut); example 1 ends d and holds b
    assert write_packed(tmp_path / "shards", tokenizer, [[0, 2], [2, 3]]) == []
    reader = ShardReader(tmp_path / "shards")
    assert reader.documents(0) == list(PACKED_DOCUMENTS[:3])
    assert reader.documents(1) == list(PACKED_DOCUMENTS[2:])
    a, b, label = reader.example(0)
    assert len(a) == 9 and len(b) == 0 and label == 0  # max_seq_len 11 - [CLS] - [SEP]
    assert read_documents(tmp_path / "shards" / "shard-00000.documents.jsonl") == list(
        PACKED_DOCUMENTS)


@pytest.mark.parametrize("spans", [[[0, 1], [3, 3]], [[0, 2], [1, 3]], [[1, 2], [2, 3]],
                                   [[0, 2], [2, 2]]])
def test_packed_spans_must_run_forward_over_every_document(tmp_path, tokenizer, spans):
    with pytest.raises(ValueError, match="run forward"):
        write_packed(tmp_path / "shards", tokenizer, spans)


def test_a_packed_example_is_all_a_and_fits_two_special_tokens(tmp_path, tokenizer):
    with pytest.raises(ValueError, match="max_seq_len - 2 = 9"):
        write_packed(tmp_path / "shards", tokenizer, [[0, 2], [2, 3]], lengths=(10, 5))
    with pytest.raises(ValueError, match="all A, label 0"):
        encode_shard_columns(np.ones(4, np.uint32), np.array([2, 1]), np.array([2, 2]),
                             np.zeros(2, np.uint8), PACKED_DOCUMENTS[:1], np.zeros((2, 2)),
                             100, packed=True)
