"""Curation ending in shards: decoded examples keep their promise, and defects are caught."""

import json
import random
import re
from pathlib import Path

import apache_beam as beam
import pyarrow.parquet as pq
import pytest
import sentencepiece as spm
from apache_beam.options.pipeline_options import PipelineOptions

from winnow.cli import main
from winnow.filters.pairs import PairsConfig
from winnow.filters.sentences import SentencesConfig
from winnow.filters.tokenizer import TokenizerConfig
from winnow.pipeline.config import config_from_dict
from winnow.pipeline.curate import local_runner, run_curation
from winnow.pipeline.shards import BuildShards
from winnow.schemas.records import Document
from winnow.schemas.shard_format import DocumentRef
from winnow.schemas.shard_reader import (
    ShardReader,
    decode_examples,
    read_documents,
    shard_stats,
)
from winnow.schemas.shard_verify import verify_shards

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


def test_stats_prints_tables_and_json_on_request(run, capsys):
    objective, folder, _ = run
    stats = shard_stats(str(folder / "shards"))
    assert main(["shards", "stats", str(folder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == stats

    assert main(["shards", "stats", str(folder)]) == 0
    text = capsys.readouterr().out
    totals = dict(re.findall(r"^  (\S+(?: \S+)*?)  +(.+)$", text.split("\n\n")[0], re.M))
    assert totals["objective"] == objective and totals["max_seq_len"] == "64"
    assert totals["examples"] == f"{stats['examples']:,}"
    assert totals["label 0 / 1"].startswith(
        f"{stats['label_counts']['0']:,} / {stats['label_counts']['1']:,} ")
    histogram = re.findall(r"^  (\d+)-(\d+) +([\d,]+)", text, re.M)
    assert [int(count.replace(",", "")) for _, _, count in histogram] == \
        stats["length_histogram"]["counts"]
    for shard in stats["per_shard"]:
        assert re.search(rf"^  {shard['name']} +{shard['examples']:,} +{shard['tokens']:,} ",
                         text, re.M)


def test_tokenizer_keeps_special_and_pii_pieces(run):
    _, folder, _ = run
    import sentencepiece as spm

    processor = spm.SentencePieceProcessor(model_file=str(folder / "tokenizer" / "tokenizer.model"))
    assert [processor.id_to_piece(i) for i in range(5)] == [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert processor.encode("<EMAIL>", out_type=str)[-1] == "<EMAIL>"
    assert processor.encode("😀", out_type=int)[-1] != 1  # byte fallback, never [UNK]


def test_shard_pieces_cut_groups_at_shard_boundaries_in_global_order():
    from winnow.filters.pairs import ExampleBlock, PairExample
    from winnow.pipeline.shards import group_offsets, shard_pieces

    def block(group: int, size: int) -> ExampleBlock:
        ref = DocumentRef(f"g{group}", "in.jsonl", group)
        return ExampleBlock.of([PairExample((group,), (number,), 0, ref, ref, number)
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


# --- provenance, on a tiny literal corpus ------------------------------------------------------

# Each document writes with its own words (no word shared), so the token ids of a segment name
# the document it came from. Two documents share the id "twin".
VOCABULARIES = {
    DocumentRef("alpha", "a.jsonl", 0): "the cat sat on a mat",
    DocumentRef("twin", "a.jsonl", 1): "and dog ran far away",
    DocumentRef("twin", "b.jsonl", 0): "from home while birds sang",
    DocumentRef("omega", "b.jsonl", 1): "over green hills near old",
    DocumentRef("kappa", "b.jsonl", 2): "river bank where fish swim",
    DocumentRef("sigma", "c.jsonl", 0): "slowly under bright summer sky",
}


def literal_documents() -> list[Document]:
    """Every paragraph is a "sentence" (sentences.enabled false): 3-6 words of the document's own
    vocabulary."""
    rng = random.Random(5)
    documents = []
    for document, vocabulary in VOCABULARIES.items():
        words = vocabulary.split()
        paragraphs = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 6)))
                      for _ in range(30)]
        documents.append(Document(document.id, "\n\n".join(paragraphs), document.input_file,
                                  document.input_position))
    return documents


def writer_of(segment, shards: Path) -> DocumentRef:
    """The one document whose text, tokenized, holds every id of ``segment`` (truncation only
    removes ids, so a cut segment still names its document)."""
    processor = spm.SentencePieceProcessor(model_file=str(shards / "tokenizer.model"))
    writers = [DocumentRef(*doc.sort_key) for doc in literal_documents()
               if set(segment) <= set(processor.encode(doc.text))]
    assert len(writers) == 1, segment
    return writers[0]


def build_literal_shards(folder: Path, objective: str, beam_args: list[str],
                         group_documents: int = 1_000, packing: str = "full_sentences") -> Path:
    """Shards of the literal corpus (a tokenizer trained on it in the run): one NSP group (by
    default), two examples a shard."""
    options = PipelineOptions(beam_args)
    with beam.Pipeline(runner=local_runner(options), options=options) as pipeline:
        _ = (pipeline
             | beam.Create(literal_documents())
             | BuildShards(str(folder), SentencesConfig(enabled=False),
                           TokenizerConfig(vocab_size=400, num_threads=1),
                           PairsConfig(objective=objective, max_seq_len=40, packing=packing),
                           examples_per_shard=2, group_documents=group_documents))
    return folder / "shards"


@pytest.fixture(scope="module", params=["sop", "nsp"])
def literal_run(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"literal-{request.param}")
    return request.param, build_literal_shards(folder, request.param, [])


def test_every_example_names_the_documents_of_its_segments(literal_run):
    objective, shards = literal_run
    assert verify_shards(shards) == []
    reader = ShardReader(shards)
    decoded = list(decode_examples(shards, len(reader), provenance=True))
    assert len(decoded) >= 20 and {example["label"] for example in decoded} == {0, 1}
    for example in decoded:
        documents = reader.provenance(example["index"])
        a, b, _ = reader.example(example["index"])
        assert documents.a == writer_of(a.tolist(), shards), example
        assert documents.b == writer_of(b.tolist(), shards), example
        assert example["document_a"] == documents.a._asdict()
        assert example["document_b"] == documents.b._asdict()
        # B is A's own document for SOP and a true next; NSP's random B is another one
        assert (documents.a == documents.b) == (objective == "sop" or example["label"] == 0)
    assert {reader.provenance(i).a for i in range(len(reader))} == set(VOCABULARIES)


def test_each_shard_lists_the_documents_of_its_a_and_b_segments(literal_run):
    objective, shards = literal_run
    reader = ShardReader(shards)
    b_only = 0  # documents a shard holds only through a random B
    for number, info in enumerate(reader.manifest.shards):
        first = int(reader._starts[number])
        traced = [reader.provenance(first + local) for local in range(info.examples)]
        listed = read_documents(shards / f"{info.name}.documents.jsonl")
        assert listed == sorted({ref for pair in traced for ref in pair})
        assert info.documents == len(listed)
        b_only += len(set(listed) - {pair.a for pair in traced})
    assert (b_only > 0) == (objective == "nsp")


def test_show_prints_where_examples_came_from(literal_run, capsys):
    _, shards = literal_run
    reader = ShardReader(shards)
    assert main(["shards", "show", str(shards), "--start", "3", "-n", "1", "--provenance"]) == 0
    out = capsys.readouterr().out.splitlines()
    a, b = reader.provenance(3)
    assert out[0].startswith("#3 label=")
    assert out[3:] == [f"  A from: {json.dumps(a._asdict())}",
                       f"  B from: {json.dumps(b._asdict())}"]
    assert '"input_file": "' in out[3] and '"input_position": ' in out[3]
    assert main(["shards", "show", str(shards), "--start", "3", "-n", "1", "--provenance",
                 "--json"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["document_a"] == a._asdict() and line["document_b"] == b._asdict()


@pytest.mark.parametrize("literal_run", ["nsp"], indirect=True)  # B refs cross documents
def test_provenance_files_are_the_same_bytes_on_two_workers(literal_run, tmp_path):
    objective, shards = literal_run
    again = build_literal_shards(tmp_path, objective, ["--direct_running_mode=multi_processing",
                                                       "--direct_num_workers=2"])
    names = sorted(path.name for path in shards.iterdir())
    assert names == sorted(path.name for path in again.iterdir())
    assert sum(name.endswith(".provenance.npy") for name in names) > 5
    for name in names:
        assert (shards / name).read_bytes() == (again / name).read_bytes(), name


# --- mlm: packed full sentences, on the literal corpus ------------------------------------------

MLM_GROUP_DOCUMENTS = 2  # six documents in three groups: packing crosses documents in each


@pytest.fixture(scope="module")
def mlm_shards(tmp_path_factory):
    return build_literal_shards(tmp_path_factory.mktemp("literal-mlm"), "mlm", [],
                                MLM_GROUP_DOCUMENTS)


def test_mlm_shards_pack_documents_with_a_separator_exactly_between_them(mlm_shards):
    assert verify_shards(mlm_shards) == []
    reader = ShardReader(mlm_shards)
    manifest = reader.manifest
    assert manifest.objective == "mlm" and manifest.label_counts == {0: len(reader), 1: 0}
    separator = manifest.special_tokens["[SEP]"]
    crossing = 0
    for i in range(len(reader)):
        a, b, label = reader.example(i)
        ids = a.tolist()
        assert len(b) == 0 and label == 0 and 1 <= len(ids) <= 40 - 2
        assert ids[0] != separator and ids[-1] != separator
        cuts = [k for k, token in enumerate(ids) if token == separator]
        segments = [ids[start + 1:end] for start, end in zip([-1, *cuts], [*cuts, len(ids)],
                                                                 strict=True)]
        # each piece between separators is one document's, and the pieces are the example's
        # documents, listed in order
        assert [writer_of(segment, mlm_shards) for segment in segments] == reader.documents(i)
        crossing += len(segments) > 1
    assert crossing >= 2
    every = [ref for i in range(len(reader)) for ref in reader.documents(i)]
    assert set(every) == set(VOCABULARIES)


def test_mlm_show_decodes_the_separator_and_lists_every_document(mlm_shards, capsys):
    reader = ShardReader(mlm_shards)
    crossing = next(i for i in range(len(reader)) if len(reader.documents(i)) > 1)
    assert main(["shards", "show", str(mlm_shards), "--start", str(crossing), "-n", "1",
                 "--provenance"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"#{crossing} (mlm)" and " [SEP] " in out[1]
    assert out[2:] == [f"  from: {json.dumps(ref._asdict())}"
                       for ref in reader.documents(crossing)]
    assert main(["shards", "show", str(mlm_shards), "--start", str(crossing), "-n", "1",
                 "--provenance", "--json"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["documents"] == [ref._asdict() for ref in reader.documents(crossing)]
    assert line["segment_b"] == "" and line["label"] == 0


def test_mlm_shards_are_the_same_bytes_on_two_workers(mlm_shards, tmp_path):
    again = build_literal_shards(tmp_path, "mlm", ["--direct_running_mode=multi_processing",
                                                   "--direct_num_workers=2"],
                                 MLM_GROUP_DOCUMENTS)
    names = sorted(path.name for path in mlm_shards.iterdir())
    assert names == sorted(path.name for path in again.iterdir())
    assert sum(name.endswith(".tokens.bin") for name in names) > 5
    for name in names:
        assert (mlm_shards / name).read_bytes() == (again / name).read_bytes(), name


def test_fill_packing_gives_full_rows_of_the_same_text_that_verify(mlm_shards, tmp_path):
    filled = build_literal_shards(tmp_path, "mlm", [], MLM_GROUP_DOCUMENTS, packing="fill")
    assert verify_shards(filled) == []
    reader, whole = ShardReader(filled), ShardReader(mlm_shards)
    separator = reader.manifest.special_tokens["[SEP]"]
    lengths = [len(reader.example(i)[0]) for i in range(len(reader))]
    assert sum(length < 40 - 2 for length in lengths) <= 3  # a short last row per group
    assert len(reader) < len(whole)

    def text(shards: ShardReader) -> list[int]:
        return [t for i in range(len(shards)) for t in shards.example(i)[0].tolist()
                if t != separator]
    assert text(reader) == text(whole)


def test_the_config_takes_objective_mlm():
    assert config_from_dict({"pairs": {"objective": "mlm"}}).pairs.objective == "mlm"
