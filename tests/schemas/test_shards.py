import dataclasses
import io
import json
import os
import pickle
import random

import numpy as np
import pytest
import sentencepiece

from schemas.shards import (
    INDEX_DTYPE,
    MANIFEST_FILE,
    ShardInfo,
    ShardManifest,
    ShardReader,
    decode_examples,
    encode_shard,
    encode_shard_columns,
    escape_source_id,
    sha256_bytes,
    sha256_file,
    shard_info,
    shard_prefix,
    shard_stats,
    special_tokens_from_model,
    token_dtype,
    unescape_source_id,
    verify_shards,
)
from tests.tiny_tokenizer import train_tokenizer

# Three shards of literal examples: (A, B, label); ids < 100 (the tiny tokenizer's vocabulary).
SHARDS = [
    (
        [([10, 11, 12], [13, 14], 0), ([15], [16, 17, 18, 19], 1), ([20, 21], [22], 0)],
        ["doc-b", "doc-a", "doc-b"],
    ),
    (
        [([30, 31, 32, 33, 34], [35, 36, 37], 1), ([40], [41], 1)],
        ["doc-c"],
    ),
    (
        [([50, 51], [52, 53], 0), ([60, 61, 62], [63], 0), ([70], [71, 72], 1),
         ([80, 81, 82, 83], [84, 85, 86, 87, 88, 89, 90, 91, 92, 93], 0)],
        ["doc-d", "doc\nwith newline", "doc\\slash"],
    ),
]
ALL_EXAMPLES = [example for examples, _ in SHARDS for example in examples]
MAX_SEQ_LEN = 20
FILES = [MANIFEST_FILE, "tokenizer.model"] + [
    f"{shard_prefix(i)}.{suffix}" for i in range(len(SHARDS))
    for suffix in ("tokens.bin", "index.npy", "sources.txt")]


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
    for number, (examples, doc_ids) in enumerate(shards):
        prefix = shard_prefix(number)
        encoded = encode_shard(examples, doc_ids, vocab_size, max_seq_len=max_seq_len)
        tokens = sum(len(a) + len(b) for a, b, _ in examples)
        info = shard_info(prefix, encoded, len(examples), tokens, len(set(doc_ids)))
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


def replace_index(encoded, change):
    rows = np.load(io.BytesIO(encoded["index.npy"])).copy()
    change(rows)
    buffer = io.BytesIO()
    np.save(buffer, rows)
    encoded["index.npy"] = buffer.getvalue()
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
    examples, doc_ids = SHARDS[2]
    first = encode_shard(examples, doc_ids, 100)
    again = encode_shard(list(examples), list(reversed(doc_ids)), 100)
    assert first == again
    assert set(first) == {"tokens.bin", "index.npy", "sources.txt"}
    rows = np.load(io.BytesIO(first["index.npy"]))
    buffer = io.BytesIO()
    np.save(buffer, rows)
    assert buffer.getvalue() == first["index.npy"]  # the header is numpy's own
    assert rows.dtype == INDEX_DTYPE and INDEX_DTYPE.itemsize == 17
    assert rows["offset"].tolist() == [0, 4, 8, 11]
    assert rows["length"].tolist() == [4, 4, 3, 14]
    assert rows["length_a"].tolist() == [2, 3, 1, 4]
    assert rows["label"].tolist() == [0, 0, 1, 0]
    tokens = np.frombuffer(first["tokens.bin"], dtype="<u2")
    assert tokens.tolist() == [t for a, b, _ in examples for t in (*a, *b)]
    lines = first["sources.txt"].decode().split("\n")
    assert lines == ["doc\\nwith newline", "doc-d", "doc\\\\slash", ""]  # by code point
    numpy_input = [(np.array(a, dtype=np.int32), np.array(b), label) for a, b, label in examples]
    assert encode_shard(numpy_input, doc_ids, 100) == first


def test_source_ids_escape_to_one_line_and_back():
    for doc_id in ("plain", "a\nb", "a\rb\\n", "back\\slash", "lone \ud800 surrogate", ""):
        line = escape_source_id(doc_id)
        assert "\n" not in line and "\r" not in line
        line.encode("utf-8")
        assert unescape_source_id(line) == doc_id
    with pytest.raises(ValueError):
        unescape_source_id("bad \\t escape")


@pytest.mark.parametrize("examples, doc_ids, vocab, message", [
    ([], ["d"], 100, "at least one example"),
    ([([], [1], 0)], ["d"], 100, "segment A is empty"),
    ([([1], [], 0)], ["d"], 100, "segment B is empty"),
    ([([1], [2], 2)], ["d"], 100, "label"),
    ([([1], [100], 0)], ["d"], 100, "outside"),
    ([([-1], [2], 0)], ["d"], 100, "outside"),
    ([([1.5], [2], 0)], ["d"], 100, "not an integer"),
    ([([1], [70_000], 0)], ["d"], 70_000, "outside"),
    ([([1], [65_536], 0)], ["d"], 100, "outside"),
    ([([1], [2], 0)], [], 100, "ids of the documents"),
    ([(list(range(10)), list(range(8)), 0)], ["d"], 100, "max_seq_len - 3"),
])
def test_encode_refuses_what_the_format_cannot_hold(examples, doc_ids, vocab, message):
    with pytest.raises(ValueError, match=message):
        encode_shard(examples, doc_ids, vocab, max_seq_len=20)


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
    doc_ids = [f"doc-{rng.randrange(100)}" for _ in examples]
    for shard_examples, shard_doc_ids in [*SHARDS, (examples, doc_ids)]:
        if vocab_size == 70_000 or max(max(a + b) for a, b, _ in shard_examples) < vocab_size:
            assert encode_shard_columns(*columns(shard_examples), shard_doc_ids, vocab_size,
                                        max_seq_len=64) == \
                encode_shard(shard_examples, shard_doc_ids, vocab_size, max_seq_len=64)


@pytest.mark.parametrize("examples, doc_ids, vocab, message", [
    ([], ["d"], 100, "at least one example"),
    ([([1, 2], [3], 0), ([], [1], 0)], ["d"], 100, "example 1: segment A is empty"),
    ([([1], [], 0)], ["d"], 100, "example 0: segment B is empty"),
    ([([1], [2], 0), ([1], [2], 2)], ["d"], 100, "example 1: label must be 0 or 1, got 2"),
    ([([1], [100], 0)], ["d"], 100, "token id 100 outside"),
    ([([1], [65_536], 0)], ["d"], 100, "outside"),
    ([([1], [2], 0)], [], 100, "ids of the documents"),
    ([(list(range(10)), list(range(8)), 0)], ["d"], 100, "example 0: 18 tokens > max_seq_len"),
])
def test_columns_refuse_what_the_format_cannot_hold(examples, doc_ids, vocab, message):
    with pytest.raises(ValueError, match=message):
        encode_shard_columns(*columns(examples), doc_ids, vocab, max_seq_len=20)
    tokens, lengths_a, lengths, labels = columns([([1], [2], 0)])
    with pytest.raises(ValueError, match="add up to 2 ids, tokens holds 3"):
        encode_shard_columns(np.array([1, 2, 3], np.uint32), lengths_a, lengths, labels, ["d"],
                             100)
    with pytest.raises(ValueError, match="unsigned"):
        encode_shard_columns(tokens.astype(np.int64), lengths_a, lengths, labels, ["d"], 100)


def test_shard_info_checks_the_counts_against_the_bytes():
    examples, doc_ids = SHARDS[0]
    encoded = encode_shard(examples, doc_ids, 100)
    info = shard_info("shard-00000", encoded, 3, 13, 2)
    assert info.label_counts == {0: 2, 1: 1}
    assert info.files["shard-00000.tokens.bin"] == sha256_bytes(encoded["tokens.bin"])
    assert ShardInfo.from_json(info.to_json()) == info
    for wrong in ((4, 13, 2), (3, 12, 2), (3, 13, 3)):
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
    clone = pickle.loads(pickle.dumps(reader))
    assert clone._maps == {}
    assert clone.example(5)[0].tolist() == ALL_EXAMPLES[5][0]


def test_ids_above_uint16_survive_with_uint32(tmp_path):
    vocab = 100_000
    shards = [([([65_535, 65_536], [99_999], 0), ([70_000], [1, 2], 1)], ["d1"]),
              ([([0], [65_537, 80_000, 3], 1)], ["d2"])]
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
        return replace_index(encoded, change) if number == 2 else encoded

    write_set(tmp_path, SHARDS, tokenizer, tamper=tamper)
    problems = verify_shards(tmp_path)
    assert problems and all(p.startswith("shard-00002.index.npy:") for p in problems), problems
    assert any(message in p for p in problems), problems


def test_unlisted_and_missing_files(shard_dir):
    (shard_dir / "shard-00003.tokens.bin").write_bytes(b"\x00\x01")
    (shard_dir / "shard-00001.sources.txt").unlink()
    problems = verify_shards(shard_dir)
    assert problems_naming(problems, "shard-00003.tokens.bin") == [
        "shard-00003.tokens.bin: not listed in manifest.json"]
    assert any("missing" in p for p in problems_naming(problems, "shard-00001.sources.txt"))


def test_unsorted_sources_and_bad_escapes(tmp_path, tokenizer):
    def tamper(number, encoded):
        if number == 2:
            encoded["sources.txt"] = b"z\na\n\\q\n"
        return encoded

    write_set(tmp_path, SHARDS, tokenizer, tamper=tamper)
    problems = verify_shards(tmp_path)
    assert any("not sorted" in p for p in problems_naming(problems, "shard-00002.sources.txt"))
    assert any("invalid escape" in p for p in problems)


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
    assert stats["documents"] == 2 + 1 + 3
    histogram = stats["length_histogram"]
    assert histogram["bin_width"] == 16 and histogram["counts"] == [9, 0]
    assert [s["examples"] for s in stats["per_shard"]] == [3, 2, 4]
    assert stats["per_shard"][1]["label_counts"] == {"0": 0, "1": 2}
    json.dumps(stats)


def test_decode_examples_gives_back_the_text(tmp_path, tokenizer):
    processor = sentencepiece.SentencePieceProcessor(model_proto=tokenizer)
    pairs = [("the cat sat on a mat", "and dog ran far away", 0),
             ("birds sang over green hills", "fish swim slowly", 1)]
    examples = [(processor.encode(a), processor.encode(b), label) for a, b, label in pairs]
    write_set(tmp_path, [(examples, ["d"])], tokenizer, max_seq_len=64, objective="nsp")
    assert verify_shards(tmp_path) == []
    decoded = list(decode_examples(tmp_path, 5))
    assert [(d["segment_a"], d["segment_b"], d["label"]) for d in decoded] == pairs
    assert decoded[1]["index"] == 1 and decoded[0]["objective"] == "nsp"
    assert [d["index"] for d in decode_examples(tmp_path, 1, start=1)] == [1]


def test_the_verifier_streams_across_chunk_boundaries(tmp_path, tokenizer, monkeypatch):
    import schemas.shards

    monkeypatch.setattr(schemas.shards, "_CHUNK_BYTES", 36)  # 2 rows, 18 ids, 36 source bytes
    rng = random.Random(3)
    examples = [([rng.randrange(100) for _ in range(rng.randint(1, 8))],
                 [rng.randrange(100) for _ in range(rng.randint(1, 8))], rng.randint(0, 1))
                for _ in range(41)]
    big = [(examples, [f"document number {i}" for i in range(30)])]
    write_set(tmp_path / "good", big, tokenizer)
    assert verify_shards(tmp_path / "good") == []

    def tamper(number, encoded):
        return replace_index(encoded, lambda rows: rows["label"].__setitem__(37, 3))

    write_set(tmp_path / "bad", big, tokenizer, tamper=tamper)
    assert verify_shards(tmp_path / "bad") == [
        "shard-00000.index.npy: row 37: label 3 not in {0, 1}",
        "shard-00000.index.npy: label counts "
        f"{{0: {sum(e[2] == 0 for e in examples) - (examples[37][2] == 0)}, "
        f"1: {sum(e[2] == 1 for e in examples) - (examples[37][2] == 1)}}} "
        f"!= the manifest's {{0: {sum(e[2] == 0 for e in examples)}, "
        f"1: {sum(e[2] == 1 for e in examples)}}}"]
