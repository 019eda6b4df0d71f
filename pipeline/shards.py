"""From kept documents to training shards: tokenizer, sentence pairs, fixed-size token shards.

    kept docs ─► tokenizer (trained on a seeded sample, or the configured model)
              ─► sentences ─► token ids, per document wherever it is (the costly part)
              ─► group_to_docs: tokenized documents spread over groups by a seeded hash of
                 (id, position in the input file)
              ─► SOP/NSP examples per group (``filters.pairs``), as one ExampleBlock, or for
                 mlm the group's documents packed in ref order (a PackedBlock)
              ─► global example index (group offsets) ─► shard = index // examples_per_shard
              ─► DIR/shards/shard-NNNNN.{tokens.bin,index.npy,documents.jsonl,provenance.npy},
                 manifest.json

Groups bound memory (one group's examples at a time) and give NSP its pool of other documents
to draw random segments from. Documents are named by ``DocumentRef`` (id, input file, position)
from tokenization on, so inputs that repeat ids pair and trace back correctly, and every example
carries the refs of its A's and B's documents into the shard's provenance files. Examples are
numbered by (group, document ref, example index), so every shard holds exactly
``examples_per_shard`` examples (the last one fewer) and the same input, config and seed give
byte-identical shards on any runner and worker count. The format is specified in
``schemas.shard_format``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import apache_beam as beam
import numpy as np

from winnow.filters.pairs import (
    ExampleBlock,
    PairsConfig,
    PairStats,
    group_examples,
    pack_sentences,
    packed_examples,
    unpack_sentences,
)
from winnow.filters.pii_names import NameRedactor
from winnow.filters.sentences import SentencesConfig, document_sentences
from winnow.filters.tokenizer import (
    Tokenizer,
    TokenizerConfig,
    model_sha256,
    sample_rank,
    train_tokenizer,
)
from winnow.pipeline.filesystem import open_binary
from winnow.pipeline.memory import release_free_memory
from winnow.pipeline.transforms import STATS, BundleStats
from winnow.pipeline.writers import write_atomically
from winnow.schemas.records import Document, pack_text, unpack_text
from winnow.schemas.shard_format import (
    MANIFEST_FILE,
    PACKED_OBJECTIVE,
    DocumentRef,
    ShardManifest,
    encode_shard_columns,
    shard_info,
    shard_prefix,
    special_tokens_from_model,
)


@dataclass(frozen=True)
class ShardsConfig:
    enabled: bool = True
    """End the run in training shards (DIR/shards/): sentences, pairs, SentencePiece tokens."""
    examples_per_shard: int = 100_000
    """Examples in each shard file but the last. One shard is assembled in one worker's memory
    (about 1 KB per example at max_seq_len 128)."""
    group_documents: int = 1_000
    """Documents per pairing group: the unit a worker turns into examples at once, and NSP's
    pool of other documents for random next segments."""

    def errors(self) -> list[str]:
        problems = []
        for name in ("examples_per_shard", "group_documents"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)!r}")
        return problems

STAGE = "shards"
TOKENIZER_FILE = "tokenizer.model"
LENGTH_BIN = 16
"""Width, in tokens, of the example-length histogram bins in the report."""
WITHOUT_EXAMPLE = "without_example"
"""Tally prefix of the kept documents that gave no training example, by reason (they stay in
kept/): ``no_tokens`` (no sentence with a token), ``one_sentence`` (nothing to pair it with),
``long_sentences`` (every sentence reached the example's length alone, so no two shared one)."""


def without_example_reason(sentences) -> str:
    """Why a document whose sentences (token id arrays) gave no example gave none: a chunk of
    two or more sentences always gives one (``filters.pairs``)."""
    count = sum(1 for sentence in sentences if len(sentence))
    return "no_tokens" if count == 0 else "one_sentence" if count == 1 else "long_sentences"


def training_sentences(texts, config: SentencesConfig):
    """Every sentence of every text, one SentencePiece training line each."""
    for text in texts:
        yield from document_sentences(text, config)


def sampled_text(doc: Document, chosen: set, seed: int, chars: int):
    """doc -> (rank, sort key, packed text cut to ``chars``) when the document is in the
    tokenizer's sample ``chosen`` (sort keys). Only the sample's texts travel, compressed."""
    if doc.sort_key in chosen:
        yield sample_rank(seed, doc.id), doc.sort_key, pack_text(doc.text[:chars])


def train_on_sample(sample, sentences: SentencesConfig, tokenizer: TokenizerConfig) -> bytes:
    """sample: [(rank, document sort key, packed text)] -> model bytes; sorted first so order
    is fixed. Each text is unpacked only when SentencePiece asks for its sentences (it pulls
    them one by one and keeps its own copies): the sample stays compressed in Python, not
    also held whole beside SentencePiece's copy."""
    ordered = sorted(sample)
    if not ordered:
        return b""  # nothing was kept: no tokenizer, no shards (the report says so)
    release_free_memory()  # SentencePiece's arrays (about 20 bytes a character) come next
    texts = (unpack_text(text) for _, _, text in ordered)
    return train_tokenizer(training_sentences(texts, sentences), tokenizer)


def read_model(path: str) -> bytes:
    with open_binary(path) as handle:
        return handle.read()


class TokenizeFn(beam.DoFn):
    """doc -> (group, (sort key, packed sentence ids)); stats on ``stats``. The sort key
    (id, input file, position) is the document's ``DocumentRef``.

    Runs on each document where it is, before any grouping, so sentence splitting and
    tokenization (most of this stage's work) spread evenly over the workers."""

    def __init__(self, sentences: SentencesConfig, seed: int, group_documents: int):
        self.sentences = sentences
        self.seed = seed
        self.group_documents = group_documents

    def setup(self):
        self._tokenizer = None
        self._model = b""
        self._stats = BundleStats()

    def process(self, doc: Document, model_bytes: bytes, document_count: int):
        tokenizer = self._tokenizer_for(model_bytes)
        started = time.perf_counter()
        packed = pack_sentences(tokenizer.encode(document_sentences(doc.text, self.sentences)))
        stats = self._stats.stage(STAGE)
        stats.documents_in += 1
        stats.bytes_in += len(doc.text.encode("utf-8"))
        stats.seconds += time.perf_counter() - started
        groups = max(1, document_count // self.group_documents)
        yield group_of(doc, self.seed, groups), (doc.sort_key, *packed)

    def _tokenizer_for(self, model_bytes: bytes) -> Tokenizer:
        """Loaded once per worker: the side input is usually the very same object, and
        comparing equal bytes is a memcmp (hashing them took 1.5 ms a document)."""
        if model_bytes is not self._model and model_bytes != self._model:
            self._tokenizer, self._model = Tokenizer(model_bytes), model_bytes
        return self._tokenizer

    def finish_bundle(self):
        yield from self._stats.flush()


class PairsFn(beam.DoFn):
    """(group, tokenized docs) -> (group, ExampleBlock sorted by (document ref, index)); stats
    on ``stats``. NSP draws its random ``B`` segments from the other documents of the group;
    mlm packs the group's documents, in ref order, with the ``separator`` id between them."""

    def __init__(self, pairs: PairsConfig):
        self.pairs = pairs

    def setup(self):
        self._stats = BundleStats()

    def process(self, group_and_docs, separator: int):
        group, docs = group_and_docs
        started = time.perf_counter()
        tokenized = [(DocumentRef(*key), unpack_sentences(tokens, lengths))
                     for key, tokens, lengths in sorted(docs, key=lambda d: d[0])]
        pair_stats = PairStats()
        if self.pairs.objective == PACKED_OBJECTIVE:
            block = packed_examples(tokenized, self.pairs, separator, pair_stats)
        else:
            examples = group_examples(tokenized, self.pairs, pair_stats)
            examples.sort(key=lambda example: (example.doc_a, example.index))
            block = ExampleBlock.of(examples)
        with_example = block.documents_with_a()
        stats = self._stats.stage(STAGE)
        stats.seconds += time.perf_counter() - started
        stats.documents_out += len(with_example)
        for ref, sentences in tokenized:
            if ref not in with_example:
                stats.tallies[f"{WITHOUT_EXAMPLE}:{without_example_reason(sentences)}"] += 1
        for name, value in pair_stats.as_dict().items():
            stats.tallies[name] += value
        bins = np.bincount(block.lengths // LENGTH_BIN) if len(block) else []
        for length_bin, count in enumerate(bins):
            if count:
                stats.tallies[f"length_bin:{length_bin:04d}"] += int(count)
        yield group, block

    def finish_bundle(self):
        yield from self._stats.flush()


def group_offsets(group_sizes) -> dict[int, int]:
    """[(group, examples)] -> {group: global index of its first example}, groups in order.
    Computed once, so numbering costs a lookup per group however many groups there are."""
    offsets, first = {}, 0
    for group, count in sorted(group_sizes):
        offsets[group] = first
        first += count
    return offsets


def shard_pieces(group_and_block, offsets: dict[int, int], examples_per_shard: int):
    """(group, block) -> (shard index, (global index of its first example, piece)) for each
    shard the group's examples fall in: a handful of pieces per group, not one per example."""
    group, block = group_and_block
    start = 0
    while start < len(block):
        index = offsets[group] + start
        shard = index // examples_per_shard
        stop = min(len(block), start + (shard + 1) * examples_per_shard - index)
        yield shard, (index, block.slice(start, stop))
        start = stop


class WriteShardFn(beam.DoFn):
    """(shard index, [(global index, ExampleBlock)]) -> ShardInfo, files written atomically.
    ``names``: with the pii stage on, the document refs of documents.jsonl are written with
    their ids and input files redacted as kept/ writes them (so they still join); examples are
    ordered by the original refs before, and documents.jsonl sorts the refs as written."""

    def __init__(self, shards_dir: str, max_seq_len: int, names: NameRedactor | None = None,
                 packed: bool = False):
        self.shards_dir = shards_dir
        self.max_seq_len = max_seq_len
        self.names = names
        self.packed = packed

    def process(self, shard_and_pieces, vocab_size: int):
        index, pieces = shard_and_pieces
        ordered = [piece for _, piece in sorted(pieces, key=lambda p: p[0])]
        block = type(ordered[0]).concat(ordered)  # ExampleBlock or PackedBlock
        documents = block.documents
        if self.names is not None:
            name = self.names.name
            documents = [DocumentRef(name(ref.id), name(ref.input_file), ref.input_position)
                         for ref in documents]
        encoded = encode_shard_columns(block.tokens, block.lengths_a, block.lengths, block.labels,
                                       documents, block.provenance, vocab_size,
                                       max_seq_len=self.max_seq_len, packed=self.packed)
        prefix = shard_prefix(index)
        for suffix, data in sorted(encoded.items()):
            write_atomically(f"{self.shards_dir}/{prefix}.{suffix}", data)
        yield shard_info(prefix, encoded, len(block), int(block.lengths.sum()),
                         len(block.documents))


def group_of(doc: Document, seed: int, groups: int) -> int:
    """A document's pairing group: a seeded hash of its id and its position in its input file.
    Hashed by id alone, documents sharing an id all went to one group, whatever
    ``group_documents`` said (240 of them in one group instead of 24); the position spreads
    them, and unlike the file's name it does not change when the inputs are moved."""
    return sample_rank(seed + 1, f"{doc.id}\x00{doc.position}") % groups


class BuildShards(beam.PTransform):
    """kept docs -> {manifest: [summary dict], stats}; writes DIR/tokenizer/ and DIR/shards/."""

    def __init__(self, output_dir: str, sentences: SentencesConfig, tokenizer: TokenizerConfig,
                 pairs: PairsConfig, examples_per_shard: int, group_documents: int,
                 names: NameRedactor | None = None):
        super().__init__(label=STAGE)
        self.names = names
        self.output_dir = output_dir.rstrip("/")
        self.sentences = sentences
        self.tokenizer = tokenizer
        self.pairs = pairs
        self.examples_per_shard = examples_per_shard
        self.group_documents = group_documents

    def expand(self, docs):
        model = self._tokenizer_model(docs)
        shards_dir = f"{self.output_dir}/shards"
        written_model = model | "WriteTokenizer" >> beam.Map(self._write_model, shards_dir)
        document_count = docs | "CountDocuments" >> beam.combiners.Count.Globally()
        tokenized = (
            docs
            | "Tokenize" >> beam.ParDo(
                TokenizeFn(self.sentences, self.pairs.seed, self.group_documents),
                model_bytes=beam.pvalue.AsSingleton(model),
                document_count=beam.pvalue.AsSingleton(document_count))
            .with_outputs(STATS, main="group_to_doc")
        )
        group_to_examples = (
            tokenized.group_to_doc
            | "GroupDocuments" >> beam.GroupByKey()
            | "Pairs" >> beam.ParDo(
                PairsFn(self.pairs),
                separator=beam.pvalue.AsSingleton(model | "Separator" >> beam.Map(
                    lambda m: special_tokens_from_model(m)["[SEP]"] if m else 0)))
            .with_outputs(STATS, main="group_to_examples")
        )
        examples = group_to_examples.group_to_examples
        offsets = (
            examples
            | "GroupSizes" >> beam.MapTuple(lambda g, block: (g, len(block)))
            | "AllGroupSizes" >> beam.combiners.ToList()
            | "GroupOffsets" >> beam.Map(group_offsets)
        )
        vocab_size = model | "VocabSize" >> beam.Map(
            lambda m: Tokenizer(m).vocab_size if m else 0)
        infos = (
            examples
            | "ShardPieces" >> beam.FlatMap(
                shard_pieces, offsets=beam.pvalue.AsSingleton(offsets),
                examples_per_shard=self.examples_per_shard)
            | "GroupByShard" >> beam.GroupByKey()
            | "WriteShards" >> beam.ParDo(WriteShardFn(
                shards_dir, self.pairs.max_seq_len, self.names,
                packed=self.pairs.objective == PACKED_OBJECTIVE),
                                          vocab_size=beam.pvalue.AsSingleton(vocab_size))
        )
        manifest = (
            infos
            | "AllShards" >> beam.combiners.ToList()
            | "WriteManifest" >> beam.Map(
                self._write_manifest, shards_dir, model=beam.pvalue.AsSingleton(model),
                _written=beam.pvalue.AsSingleton(written_model))
        )
        stats = ((tokenized[STATS], group_to_examples[STATS])
                 | "FlattenStats" >> beam.Flatten())
        return {"manifest": manifest, STATS: stats}

    def _tokenizer_model(self, docs):
        if self.tokenizer.model:
            return (docs.pipeline | "TokenizerPath" >> beam.Create([self.tokenizer.model])
                    | "ReadTokenizer" >> beam.Map(read_model))
        # The sample: the documents of smallest (rank, sort key). The rank depends on the id
        # alone (``sample_rank``), so documents that share an id tie on it and their sort key
        # (id, input file, position) breaks the tie, the same way on every runner. It is chosen
        # from the keys alone, and only then are the chosen documents' texts collected: a
        # combine over (rank, key, text) held up to ``sample_documents`` texts per bundle.
        seed, chars = self.tokenizer.seed, self.tokenizer.sample_chars_per_document
        chosen = (
            docs
            | "SampleKey" >> beam.Map(lambda doc: (sample_rank(seed, doc.id), doc.sort_key))
            | "TokenizerSample" >> beam.combiners.Top.Of(self.tokenizer.sample_documents,
                                                         reverse=True)
            | "SampleKeys" >> beam.Map(lambda ranked: {key for _, key in ranked})
        )
        return (
            docs
            | "SampleTexts" >> beam.FlatMap(sampled_text, beam.pvalue.AsSingleton(chosen),
                                            seed, chars)
            | "AllSampleTexts" >> beam.combiners.ToList()
            | "TrainTokenizer" >> beam.Map(train_on_sample, self.sentences, self.tokenizer)
        )

    def _write_model(self, model_bytes: bytes, shards_dir: str) -> str:
        if not model_bytes:
            return ""
        path = f"{self.output_dir}/tokenizer/{TOKENIZER_FILE}"
        write_atomically(path, model_bytes)
        write_atomically(f"{shards_dir}/{TOKENIZER_FILE}", model_bytes)
        return path

    def _write_manifest(self, infos, shards_dir: str, model: bytes, _written: str) -> dict:
        """The manifest goes last: its presence marks a complete shard set, also an empty one
        (no examples; no tokenizer either when nothing was kept to train one on)."""
        objective, max_seq_len = self.pairs.objective, self.pairs.max_seq_len
        if model:
            manifest = ShardManifest.create(
                objective=objective, max_seq_len=max_seq_len,
                vocab_size=Tokenizer(model).vocab_size, tokenizer_file=TOKENIZER_FILE,
                tokenizer_sha256=model_sha256(model),
                special_tokens=special_tokens_from_model(model),
                shards=sorted(infos, key=lambda info: info.name))
        else:
            manifest = ShardManifest.without_tokenizer(objective=objective,
                                                       max_seq_len=max_seq_len)
        write_atomically(f"{shards_dir}/{MANIFEST_FILE}", manifest.to_json().encode("utf-8"))
        if manifest.examples:
            return manifest.to_obj()
        needed = "a sentence" if objective == PACKED_OBJECTIVE else "two sentences to pair"
        why = ("the run kept no document" if not model else
               f"no kept document had {needed}")  # not model: nothing to train on
        return {**manifest.to_obj(), "note": f"no examples: {why}; the shard set is empty"}
