"""Curation ending in shards: decoded examples keep their promise, and defects are caught."""

import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.cli import main
from pipeline.curate import run_curation
from schemas.config import config_from_dict
from schemas.shards import ShardReader, decode_examples, verify_shards

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sample"


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.fixture(scope="module", params=["sop", "nsp"])
def run(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    config = config_from_dict({"pairs": {"objective": request.param, "max_seq_len": 64},
                               "shards": {"examples_per_shard": 500, "group_documents": 20}})
    report = run_curation([str(SAMPLE)], str(folder), config)
    return request.param, folder, report


def test_decoded_examples_keep_their_promise(run):
    objective, folder, report = run
    documents = {r["id"]: squash(r["text"]) for r in pq.read_table(folder / "kept").to_pylist()}
    examples = list(decode_examples(str(folder / "shards"), n=400))
    checked = 0
    for example in examples:
        a, b = squash(example["segment_a"]), squash(example["segment_b"])
        holders = [doc_id for doc_id, text in documents.items() if a in text]
        if len(holders) != 1 or documents[holders[0]].count(a) != 1:
            continue  # a segment that occurs more than once cannot be placed
        text = documents[holders[0]]
        a_start = text.find(a)
        checked += 1
        if example["label"] == 0:  # B follows A in the same document
            assert text.find(b, a_start + 1) > a_start, example
        elif objective == "sop":  # swapped: B came first
            assert -1 < text.find(b) < a_start, example
        else:  # NSP's random next segment comes from another document
            assert any(b in other for doc_id, other in documents.items()
                       if doc_id != holders[0]), example
    assert checked > len(examples) // 2


def test_labels_balanced_and_lengths_bounded(run):
    objective, folder, report = run
    reader = ShardReader(str(folder / "shards"), verify=True)
    labels = [reader.example(i)[2] for i in range(len(reader))]
    assert abs(sum(labels) / len(labels) - 0.5) < 0.05
    assert all(len(a) + len(b) <= 64 - 3 and len(a) and len(b)
               for a, b, _ in (reader.example(i) for i in range(len(reader))))
    shards = report["shards"]
    assert shards["objective"] == objective and shards["examples"] == len(reader)
    assert shards["shards"] == -(-len(reader) // 500)  # fixed size: all full but the last
    sizes = [info.examples for info in reader.manifest.shards]
    assert all(size == 500 for size in sizes[:-1]) and 0 < sizes[-1] <= 500
    assert sum(shards["length_histogram"]["counts"].values()) == len(reader)


def test_a_flipped_byte_in_any_shard_file_is_caught(run, tmp_path):
    _, folder, _ = run
    copy = tmp_path / "shards"
    copy.mkdir()
    for path in (folder / "shards").iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    assert main(["shards", "verify", str(copy)]) == 0
    for path in sorted(copy.iterdir()):
        original = path.read_bytes()
        flipped = bytearray(original)
        flipped[len(flipped) // 2] ^= 0x01
        path.write_bytes(bytes(flipped))
        problems = verify_shards(str(copy))
        assert any(path.name in problem for problem in problems), path.name
        assert main(["shards", "verify", str(copy)]) == 1
        path.write_bytes(original)


def test_show_json_lines(run, capsys):
    objective, folder, _ = run
    assert main(["shards", "show", str(folder), "-n", "3", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 3
    assert {key for line in lines for key in line} >= {
        "segment_a", "segment_b", "label", "objective"}
    assert {line["objective"] for line in lines} == {objective}


def test_tokenizer_keeps_special_and_pii_pieces(run):
    _, folder, _ = run
    import sentencepiece as spm

    processor = spm.SentencePieceProcessor(model_file=str(folder / "tokenizer" / "tokenizer.model"))
    assert [processor.id_to_piece(i) for i in range(5)] == [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert processor.encode("<EMAIL>", out_type=str)[-1] == "<EMAIL>"
    assert processor.encode("😀", out_type=int)[-1] != 1  # byte fallback, never [UNK]


def test_shard_pieces_cut_groups_at_shard_boundaries_in_global_order():
    from filters.pairs import ExampleBlock, PairExample
    from pipeline.shards import group_offsets, shard_pieces

    def block(group: int, size: int) -> ExampleBlock:
        return ExampleBlock.of([PairExample((group,), (number,), 0, f"g{group}", number)
                                for number in range(size)])

    blocks = {0: block(0, 3), 1: block(1, 9), 2: block(2, 0), 3: block(3, 2)}
    offsets = group_offsets((group, len(b)) for group, b in blocks.items())
    pieces = [piece for group, b in blocks.items()
              for piece in shard_pieces((group, b), offsets, examples_per_shard=4)]
    by_shard: dict[int, list] = {}
    for shard, (index, piece) in pieces:
        by_shard.setdefault(shard, []).append((index, piece))
    assert sorted(by_shard) == [0, 1, 2, 3]
    global_order = []
    for shard in sorted(by_shard):
        joined = ExampleBlock.concat([p for _, p in sorted(by_shard[shard], key=lambda x: x[0])])
        assert len(joined) == (4 if shard < 3 else 2)
        global_order += [(int(a[0]), int(b[0])) for a, b, _ in joined.rows()]
    assert global_order == [(g, n) for g in (0, 1, 3) for n in range(len(blocks[g]))]
