"""Tests for filters.pairs: BERT/ALBERT sentence pairs (SOP without ALBERT's bug, NSP)."""

from __future__ import annotations

import random

import pytest

from winnow.filters.pairs import (
    ExampleBlock,
    PackedBlock,
    PairExample,
    PairsConfig,
    PairStats,
    document_rng,
    nsp_examples,
    pack_sentences,
    packed_examples,
    sop_examples,
    truncate_pair,
    unpack_sentences,
)
from winnow.schemas.shard_format import DocumentRef

# Token ids encode where they come from: document d, sentence i, position k -> d*100_000 +
# i*100 + k (sentences shorter than 100 tokens, fewer than 1000 per document).


def ref(doc_id: str, position: int = 0, input_file: str = "in.jsonl") -> DocumentRef:
    return DocumentRef(doc_id, input_file, position)


def make_doc(doc_no: int, lengths: list[int]) -> list[list[int]]:
    return [[doc_no * 100_000 + i * 100 + k for k in range(n)] for i, n in enumerate(lengths)]


def doc_of(token: int) -> int:
    return token // 100_000


def stream(sentences: list[list[int]]) -> list[int]:
    return [token for sentence in sentences for token in sentence]


def is_contiguous_run(tokens, document: list[list[int]]) -> bool:
    """``tokens`` is a contiguous slice of the document's token stream."""
    flat = stream(document)
    if not tokens or tokens[0] not in flat:
        return False
    start = flat.index(tokens[0])
    return list(flat[start : start + len(tokens)]) == list(tokens)


def starts_sentences(tokens) -> bool:
    return tokens[0] % 100 == 0


def random_docs(count: int, seed: int = 7, sentences=(2, 30), tokens=(3, 40)):
    rng = random.Random(seed)
    docs = []
    for d in range(count):
        lengths = [rng.randint(*tokens) for _ in range(rng.randint(*sentences))]
        docs.append((ref(f"doc-{d:04d}", d), make_doc(d, lengths)))
    return docs


def check_sizes(examples, config: PairsConfig) -> None:
    for example in examples:
        assert len(example.tokens_a) >= 1
        assert len(example.tokens_b) >= 1
        assert len(example.tokens_a) + len(example.tokens_b) <= config.max_tokens


# -- config -----------------------------------------------------------------------------------


def test_config_defaults_and_errors():
    config = PairsConfig()
    assert config.errors() == []
    assert config.max_tokens == 125
    problems = PairsConfig(
        objective="bert", max_seq_len=4, short_seq_prob=1.5, seed="x", nsp_random_single=1
    ).errors()
    assert len(problems) == 5
    assert "objective" in problems[0]
    assert "max_seq_len" in problems[1]
    assert "short_seq_prob" in problems[2]
    assert "seed" in problems[3]
    assert "nsp_random_single" in problems[4]
    assert PairsConfig(max_seq_len=5).errors() == []


def test_document_rng_depends_on_seed_and_id_only():
    first = [document_rng(1, "a").random() for _ in range(2)]
    assert first[0] == first[1]
    assert document_rng(1, "a").random() != document_rng(1, "b").random()
    assert document_rng(1, "a").random() != document_rng(2, "a").random()


# -- truncation -------------------------------------------------------------------------------


def bert_truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng):
    """google-research/bert create_pretraining_data.truncate_seq_pair, verbatim."""
    while True:
        total_length = len(tokens_a) + len(tokens_b)
        if total_length <= max_num_tokens:
            break
        trunc_tokens = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        assert len(trunc_tokens) >= 1
        if rng.random() < 0.5:
            del trunc_tokens[0]
        else:
            trunc_tokens.pop()


@pytest.mark.parametrize("len_a,len_b,max_tokens", [(1, 100, 2), (100, 1, 2), (50, 50, 10),
                                                    (3, 4, 7), (7, 30, 9), (60, 2, 5)])
def test_truncate_pair_matches_bert_and_keeps_both_sides(len_a, len_b, max_tokens):
    for seed in range(20):
        a, b = list(range(len_a)), list(range(1000, 1000 + len_b))
        ref_a, ref_b = list(a), list(b)
        truncate_pair(a, b, max_tokens, random.Random(seed))
        bert_truncate_seq_pair(ref_a, ref_b, max_tokens, random.Random(seed))
        assert (a, b) == (ref_a, ref_b)
        assert a and b
        assert len(a) + len(b) == min(max_tokens, len_a + len_b)
        assert a == list(range(a[0], a[0] + len(a)))  # still a contiguous run


# -- SOP --------------------------------------------------------------------------------------


def test_sop_order_of_segments():
    config = PairsConfig(max_seq_len=10_000, short_seq_prob=0.3)  # no truncation
    labels = set()
    for doc, document in random_docs(40):
        for example in sop_examples(doc, document, config):
            labels.add(example.label)
            first, second = (
                (example.tokens_a, example.tokens_b)
                if example.label == 0
                else (example.tokens_b, example.tokens_a)
            )
            # whole sentences, first segment directly followed by the second
            assert starts_sentences(first) and starts_sentences(second)
            assert is_contiguous_run(first + second, document)
            assert max(first) < min(second)
            assert example.doc_a == example.doc_b == doc
    assert labels == {0, 1}


def test_sop_examples_of_a_document_are_consecutive_chunks():
    config = PairsConfig(max_seq_len=40, short_seq_prob=0.0)
    document = make_doc(3, [5] * 50)  # 250 tokens, chunks of 8 sentences (40 tokens >= 37)
    examples = sop_examples(ref("d"), document, config)
    assert [example.index for example in examples] == list(range(len(examples)))
    previous_end = -1
    for example in examples:
        first = example.tokens_a if example.label == 0 else example.tokens_b
        second = example.tokens_b if example.label == 0 else example.tokens_a
        assert min(first) > previous_end
        previous_end = max(second)


def test_sop_labels_balanced_and_sizes():
    config = PairsConfig(max_seq_len=64)
    stats = PairStats()
    examples = []
    for doc, document in random_docs(800):
        examples += sop_examples(doc, document, config, stats)
    check_sizes(examples, config)
    assert len(examples) > 3000
    assert abs(stats.label_1 / stats.examples - 0.5) < 0.03
    assert stats.examples == len(examples)
    assert stats.label_1 == sum(example.label for example in examples)
    assert stats.truncated > 0 and stats.truncated_tokens >= stats.truncated
    assert stats.documents == 800
    assert stats.tokens == sum(len(e.tokens_a) + len(e.tokens_b) for e in examples)


def test_sop_single_sentence_documents_are_skipped_and_counted():
    config = PairsConfig()
    stats = PairStats()
    assert sop_examples(ref("one"), make_doc(1, [12]), config, stats) == []
    assert sop_examples(ref("long-one"), make_doc(2, [90]), config, stats) == []
    assert stats.skipped_single_segment == 2
    assert stats.examples == 0


def test_sop_never_takes_b_from_elsewhere():
    # A sentence longer than the target makes a one-sentence chunk: skipped, never a random B.
    config = PairsConfig(max_seq_len=20, short_seq_prob=0.0)
    stats = PairStats()
    document = make_doc(4, [40, 5, 5, 5, 5, 5])
    examples = sop_examples(ref("d"), document, config, stats)
    assert stats.skipped_single_segment >= 1
    for example in examples:
        assert {doc_of(t) for t in example.tokens_a + example.tokens_b} == {4}


def test_empty_inputs():
    stats = PairStats()
    assert sop_examples(ref("e"), [], PairsConfig(), stats) == []
    assert sop_examples(ref("e2"), [[], []], PairsConfig(), stats) == []
    assert stats.empty_documents == 2
    # empty sentences are ignored: the two real ones make a pair
    examples = sop_examples(ref("x"), [[], [1, 2], [], [3]], PairsConfig(short_seq_prob=0.0))
    assert len(examples) == 1
    assert sorted(examples[0].tokens_a + examples[0].tokens_b) == [1, 2, 3]


def test_truncation_keeps_both_sides_non_empty():
    config = PairsConfig(max_seq_len=6, short_seq_prob=0.0)  # 3 tokens for A and B
    stats = PairStats()
    examples = sop_examples(ref("d"), make_doc(5, [1, 60, 2, 1, 80, 3, 1]), config, stats)
    assert examples
    check_sizes(examples, config)
    assert stats.truncated > 0


def test_short_seq_prob_zero_fills_the_target_except_the_tail():
    config = PairsConfig(max_seq_len=50, short_seq_prob=0.0)  # target 47
    stats = PairStats()
    for doc, document in random_docs(100, tokens=(3, 20), sentences=(5, 40)):
        examples = sop_examples(doc, document, config, stats)
        for example in examples[:-1]:
            assert len(example.tokens_a) + len(example.tokens_b) == config.max_tokens
    assert stats.short_target_documents == 0
    assert stats.skipped_single_segment < 100  # only document tails


def test_short_seq_prob_one_gives_short_targets():
    config = PairsConfig(max_seq_len=128, short_seq_prob=1.0)
    stats = PairStats()
    for doc, document in random_docs(50):
        sop_examples(doc, document, config, stats)
    assert stats.short_target_documents == 50


def test_sop_deterministic_and_seeded():
    docs = random_docs(30)
    config = PairsConfig(max_seq_len=64)
    first = [sop_examples(doc, document, config) for doc, document in docs]
    again = [sop_examples(doc, document, config) for doc, document in reversed(docs)]
    assert first == list(reversed(again))
    other_seed = [sop_examples(d, s, PairsConfig(max_seq_len=64, seed=1)) for d, s in docs]
    assert other_seed != first


# -- NSP --------------------------------------------------------------------------------------


def test_nsp_true_next_and_random_next():
    config = PairsConfig(objective="nsp", max_seq_len=10_000, short_seq_prob=0.2)
    docs = random_docs(30)
    by_ref = dict(docs)
    examples = nsp_examples(docs, config)
    labels = set()
    for example in examples:
        labels.add(example.label)
        document = by_ref[example.doc_a]
        own = doc_of(example.tokens_a[0])
        assert {doc_of(t) for t in example.tokens_a} == {own}
        assert example.doc_a == docs[own][0]
        assert starts_sentences(example.tokens_a)
        assert is_contiguous_run(example.tokens_a, document)
        if example.label == 0:
            assert is_contiguous_run(example.tokens_a + example.tokens_b, document)
            assert starts_sentences(example.tokens_b)
            assert example.doc_b == example.doc_a
        else:
            source = {doc_of(t) for t in example.tokens_b}
            assert len(source) == 1 and source != {own}
            assert starts_sentences(example.tokens_b)
            other = source.pop()
            assert is_contiguous_run(example.tokens_b, docs[other][1])
            assert example.doc_b == docs[other][0]  # the random B's document is recorded
    assert labels == {0, 1}


def test_nsp_labels_balanced_sizes_and_stats():
    config = PairsConfig(objective="nsp", max_seq_len=64)
    stats = PairStats()
    examples = nsp_examples(random_docs(600), config, stats)
    check_sizes(examples, config)
    assert len(examples) > 3000
    assert abs(stats.label_1 / stats.examples - 0.5) < 0.03
    assert stats.forced_random_next == 0
    assert stats.skipped_single_segment > 0
    assert stats.returned_sentences > 0
    assert stats.label_1 == sum(example.label for example in examples)


def test_nsp_random_single_is_berts_behaviour_and_skews_labels():
    config = PairsConfig(objective="nsp", max_seq_len=64, nsp_random_single=True)
    stats = PairStats()
    examples = nsp_examples(random_docs(600), config, stats)
    check_sizes(examples, config)
    assert stats.skipped_single_segment == 0
    assert stats.forced_random_next > 0
    # the coin itself stays fair; the forced negatives tip the balance towards 1
    coin = (stats.label_1 - stats.forced_random_next) / (stats.examples - stats.forced_random_next)
    assert abs(coin - 0.5) < 0.03
    assert stats.label_1 / stats.examples > 0.53


@pytest.mark.parametrize("max_seq_len,tokens", [(63, (5, 5)), (10_000, (3, 40))])
def test_nsp_unused_sentences_return_to_the_stream(max_seq_len, tokens):
    # After a random B, the chunk's sentences after A start the next chunk. With one-sentence
    # chunks given a random B too, every token of a document is in an A or a true-next B.
    # (No truncation here: 5-token sentences fill 60 tokens exactly; or no limit at all.)
    config = PairsConfig(objective="nsp", max_seq_len=max_seq_len, short_seq_prob=0.0,
                         nsp_random_single=True)
    docs = random_docs(40, tokens=tokens)
    stats = PairStats()
    examples = nsp_examples(docs, config, stats)
    assert stats.truncated == 0
    assert stats.returned_sentences > 0
    for doc, document in docs:
        used = set()
        for example in examples:
            if example.doc_a == doc:
                used.update(example.tokens_a)
                if example.label == 0:
                    used.update(example.tokens_b)
        assert used == set(stream(document))


def test_nsp_order_independent_and_deterministic():
    docs = random_docs(25)
    config = PairsConfig(objective="nsp", max_seq_len=64)
    reference = nsp_examples(docs, config)
    shuffled = list(docs)
    random.Random(3).shuffle(shuffled)
    assert nsp_examples(shuffled, config) == reference
    assert nsp_examples(docs, config) == reference
    keys = [(example.doc_a, example.index) for example in reference]
    assert keys == sorted(keys)


def test_nsp_single_document_group_has_no_random_next():
    config = PairsConfig(objective="nsp", max_seq_len=32)
    stats = PairStats()
    (doc, document), = random_docs(1)
    examples = nsp_examples([(doc, document), (ref("empty"), [])], config, stats)
    assert examples
    assert all(example.label == 0 for example in examples)
    assert stats.empty_documents == 1
    assert nsp_examples([(ref("one"), make_doc(1, [10]))], config, stats) == []


def test_nsp_single_sentence_document():
    docs = [(ref("a"), make_doc(1, [10])), (ref("b"), make_doc(2, [10, 10, 10]))]
    stats = PairStats()
    examples = nsp_examples(docs, PairsConfig(objective="nsp"), stats)
    assert [e for e in examples if e.doc_a == ref("a")] == []
    assert stats.skipped_single_segment >= 1
    # BERT's way: a random B from the other document
    stats = PairStats()
    config = PairsConfig(objective="nsp", nsp_random_single=True)
    examples = [e for e in nsp_examples(docs, config, stats) if e.doc_a == ref("a")]
    assert len(examples) == 1 and examples[0].label == 1 and examples[0].doc_b == ref("b")
    assert {doc_of(t) for t in examples[0].tokens_b} == {2}
    assert stats.forced_random_next >= 1


def test_nsp_duplicate_refs_rejected():
    with pytest.raises(ValueError, match="twice"):
        nsp_examples([(ref("a"), make_doc(1, [3, 3])), (ref("a"), make_doc(2, [3, 3]))],
                     PairsConfig())


def test_nsp_pairs_documents_that_share_an_id():
    # Inputs may repeat ids (two files, or one file twice): such documents are still separate
    # documents, told apart by input file and position, and each example names the right one.
    twins = [ref("same", 0, "a.jsonl"), ref("same", 0, "b.jsonl"), ref("same", 7, "b.jsonl")]
    docs = [(twin, make_doc(number, [4] * 40)) for number, twin in enumerate(twins)]
    config = PairsConfig(objective="nsp", max_seq_len=14, short_seq_prob=0.0)
    examples = nsp_examples(docs, config)
    assert {e.doc_a for e in examples} == set(twins)
    assert {e.label for e in examples} == {0, 1}
    for example in examples:
        assert example.doc_a == twins[doc_of(example.tokens_a[0])]
        assert example.doc_b == twins[doc_of(example.tokens_b[0])]
        assert (example.doc_a == example.doc_b) == (example.label == 0)


def test_stats_merge():
    first = PairStats(examples=3, label_1=1)
    first.merge(PairStats(examples=2, truncated=4))
    assert first.as_dict()["examples"] == 5
    assert first.truncated == 4 and first.label_1 == 1


# --- ExampleBlock: examples in columns ---------------------------------------------------------

A, B, C = ref("a"), ref("b"), ref("c")


def block_examples() -> list[PairExample]:
    """Three examples of documents ``a`` and ``b``; the last one's B comes from ``c``."""
    return [PairExample((1, 2), (3,), 0, A, A, 0), PairExample((4,), (5, 6, 7), 1, A, A, 1),
            PairExample((8, 9, 10), (11, 12), 1, B, C, 0)]


def provenance_of(block: ExampleBlock) -> list[tuple[DocumentRef, DocumentRef]]:
    return [(block.documents[a], block.documents[b]) for a, b in block.provenance.tolist()]


def as_rows(block: ExampleBlock) -> list[tuple[list[int], list[int], int]]:
    return [(a.tolist(), b.tolist(), label) for a, b, label in block.rows()]


def test_example_block_keeps_every_example_in_order():
    block = ExampleBlock.of(block_examples())
    assert len(block) == 3
    assert as_rows(block) == [([1, 2], [3], 0), ([4], [5, 6, 7], 1), ([8, 9, 10], [11, 12], 1)]
    assert block.documents == (A, B, C)
    assert block.provenance.tolist() == [[0, 0], [0, 0], [1, 2]]
    assert block.lengths.tolist() == [3, 4, 5]


def test_example_block_slices_and_joins_back_to_the_same_rows():
    block = ExampleBlock.of(block_examples())
    pieces = [block.slice(0, 1), block.slice(1, 1), block.slice(1, 3)]
    assert [len(piece) for piece in pieces] == [1, 0, 2]
    assert as_rows(pieces[2]) == [([4], [5, 6, 7], 1), ([8, 9, 10], [11, 12], 1)]
    # a piece holds only the documents its rows name
    assert [piece.documents for piece in pieces] == [(A,), (), (A, B, C)]
    assert pieces[0].provenance.tolist() == [[0, 0]]
    assert block.slice(2, 3).documents == (B, C)
    assert block.slice(2, 3).provenance.tolist() == [[0, 1]]
    joined = ExampleBlock.concat(pieces)
    assert as_rows(joined) == as_rows(block)
    assert joined.documents == block.documents
    assert provenance_of(joined) == provenance_of(block) == [(A, A), (A, A), (B, C)]
    # joined out of order, the documents are sorted again and the rows follow them
    swapped = ExampleBlock.concat([block.slice(2, 3), block.slice(0, 1)])
    assert swapped.documents == (A, B, C)
    assert provenance_of(swapped) == [(B, C), (A, A)]


def test_empty_example_block():
    block = ExampleBlock.of([])
    assert len(block) == 0 and list(block.rows()) == [] and block.documents == ()
    assert block.provenance.shape == (0, 2)
    assert len(ExampleBlock.concat([])) == 0


def test_packed_sentences_round_trip_and_drop_empty_ones():
    sentences = [[5, 6, 7], [], [70_000], [1]]
    unpacked = unpack_sentences(*pack_sentences(sentences))
    assert [sentence.tolist() for sentence in unpacked] == [[5, 6, 7], [70_000], [1]]
    assert unpack_sentences(*pack_sentences([])) == []


# -- mlm: packed full sentences ----------------------------------------------------------------

SEP = 99_999  # the separator id: not a token of make_doc (position 99 of a sentence)


def packed_rows(block: PackedBlock) -> list[list[int]]:
    assert (block.lengths_a == block.lengths).all() and not block.labels.any()
    return [a.tolist() for a, b, _ in block.rows() if not len(b)]


def test_mlm_packs_whole_sentences_across_documents_with_a_separator_between_them():
    docs = random_docs(12, seed=3, sentences=(1, 8), tokens=(3, 30))
    config = PairsConfig(objective="mlm", max_seq_len=64)
    stats = PairStats()
    block = packed_examples(docs, config, SEP, stats)
    rows = packed_rows(block)
    assert len(rows) == len(block) == stats.examples > 3
    sentences = {tuple(s) for _, doc in docs for s in doc}
    for row, (first, last) in zip(rows, block.provenance.tolist(), strict=True):
        assert 1 <= len(row) <= 64 - 2 and row[0] != SEP and row[-1] != SEP
        parts = " ".join(map(str, row)).split(f" {SEP} ")
        segments = [[int(t) for t in part.split()] for part in parts]
        # a separator exactly where the document changes, never inside one document
        assert [doc_of(segment[0]) for segment in segments] == [
            int(ref.id[4:]) for ref in block.documents[first:last + 1]]
        assert all(len({doc_of(t) for t in segment}) == 1 for segment in segments)
        # whole sentences: the row cuts a sentence only at its ends (none is longer than 62)
        for segment in segments[1:-1]:
            assert starts_sentences(segment)
        for segment in segments:
            cut = [i for i in range(1, len(segment)) if segment[i] % 100 == 0]
            pieces = [segment[a:b] for a, b in zip([0, *cut], [*cut, len(segment)], strict=True)]
            assert all(tuple(piece) in sentences for piece in pieces), segment
    # every token once, in ref order; the rows start a sentence
    assert [t for row in rows for t in row if t != SEP] == [
        t for _, doc in sorted(docs) for s in doc for t in s]
    assert all(starts_sentences(row) for row in rows)
    # a document is listed by every row holding its tokens, and the rows run forward
    assert block.documents == tuple(sorted(ref for ref, _ in docs))
    assert stats.separators == sum(row.count(SEP) for row in rows) > 0
    assert stats.tokens == sum(map(len, rows)) and stats.documents == 12


def test_mlm_packing_ignores_the_order_documents_arrive_in():
    docs = random_docs(9, seed=4, sentences=(1, 6))
    config = PairsConfig(objective="mlm", max_seq_len=50)
    first = packed_examples(docs, config, SEP)
    again = packed_examples(list(reversed(docs)), config, SEP)
    assert packed_rows(first) == packed_rows(again)
    assert first.provenance.tolist() == again.provenance.tolist()
    assert first.documents == again.documents


def test_mlm_cuts_a_sentence_longer_than_the_budget_and_loses_no_token():
    docs = [(ref("a"), make_doc(1, [5])), (ref("b"), make_doc(2, [25, 4])),
            (ref("c"), make_doc(3, [3]))]
    stats = PairStats()
    block = packed_examples(docs, PairsConfig(objective="mlm", max_seq_len=12), SEP, stats)
    long = make_doc(2, [25])[0]
    assert packed_rows(block) == [make_doc(1, [5])[0], long[:10], long[10:20],
                                  long[20:] + make_doc(2, [25, 4])[1],
                                  make_doc(3, [3])[0]]
    spans = block.provenance.tolist()
    assert [[d.id for d in block.documents[f:last + 1]] for f, last in spans] == [
        ["a"], ["b"], ["b"], ["b"], ["c"]]
    assert stats.split_sentences == 1 and stats.separators == 0
    # a separator only when the next document's first sentence fits after it
    block = packed_examples(docs[:1] + docs[2:], PairsConfig(objective="mlm", max_seq_len=11),
                            SEP)
    assert packed_rows(block) == [make_doc(1, [5])[0] + [SEP] + make_doc(3, [3])[0]]
    assert block.provenance.tolist() == [[0, 1]]


def test_mlm_fill_packing_makes_every_row_but_the_last_full_and_loses_no_token():
    docs = random_docs(12, seed=3, sentences=(1, 8), tokens=(3, 30))
    stats, sentences_stats = PairStats(), PairStats()
    block = packed_examples(docs, PairsConfig(objective="mlm", max_seq_len=64, packing="fill"),
                            SEP, stats)
    whole = packed_examples(docs, PairsConfig(objective="mlm", max_seq_len=64), SEP,
                            sentences_stats)
    rows = packed_rows(block)
    assert [len(row) for row in rows[:-1]] == [62] * (len(rows) - 1) and 0 < len(rows[-1]) <= 62
    assert len(rows) < len(packed_rows(whole))
    # the same text in the same order as full-sentence packing, re-cut; a separator at every
    # change of document inside a row (more of them: fewer documents start a row)
    assert [t for row in rows for t in row if t != SEP] == [
        t for row in packed_rows(whole) for t in row if t != SEP]
    assert all(row[0] != SEP and row[-1] != SEP for row in rows)
    boundaries = sum(1 for row in rows for a, b in zip(row, row[1:], strict=False)
                     if SEP not in (a, b) and doc_of(a) != doc_of(b))
    assert boundaries == 0 and stats.separators == sum(row.count(SEP) for row in rows)
    assert stats.separators > sentences_stats.separators
    # each row lists the documents its tokens come from, in order
    for row, (first, last) in zip(rows, block.provenance.tolist(), strict=True):
        docs_in_row = []
        for token in row:
            if token != SEP and doc_of(token) not in docs_in_row:
                docs_in_row.append(doc_of(token))
        assert docs_in_row == [int(ref.id[4:]) for ref in block.documents[first:last + 1]]
    assert stats.split_sentences > sentences_stats.split_sentences
    assert stats.tokens - stats.separators == sentences_stats.tokens - sentences_stats.separators


def test_mlm_fill_packing_never_ends_a_row_with_the_separator():
    # 10 tokens fill the budget of 10 but one: a separator there would end the row
    docs = [(ref("a"), make_doc(1, [9])), (ref("b"), make_doc(2, [4]))]
    block = packed_examples(docs, PairsConfig(objective="mlm", max_seq_len=12, packing="fill"),
                            SEP)
    assert packed_rows(block) == [make_doc(1, [9])[0], make_doc(2, [4])[0]]
    docs = [(ref("a"), make_doc(1, [8])), (ref("b"), make_doc(2, [4]))]
    block = packed_examples(docs, PairsConfig(objective="mlm", max_seq_len=12, packing="fill"),
                            SEP)
    second = make_doc(2, [4])[0]
    assert packed_rows(block) == [make_doc(1, [8])[0] + [SEP] + second[:1], second[1:]]
    assert block.provenance.tolist() == [[0, 1], [1, 1]]


def test_packing_must_be_a_known_one():
    assert PairsConfig(objective="mlm", packing="fill").errors() == []
    assert PairsConfig(packing="tight").errors() == [
        "packing must be one of ('full_sentences', 'fill'), got 'tight'"]


def test_packed_block_slices_and_joins_back_with_shared_boundary_documents():
    docs = random_docs(6, seed=5, sentences=(2, 6))
    block = packed_examples(docs, PairsConfig(objective="mlm", max_seq_len=40), SEP)
    assert len(block) > 6
    cuts = [0, 2, 3, 5, len(block)]
    pieces = [block.slice(a, b) for a, b in zip(cuts, cuts[1:], strict=False)]
    for piece, start in zip(pieces, cuts, strict=False):
        for row, (first, last) in enumerate(piece.provenance.tolist()):
            whole_first, whole_last = block.provenance[start + row].tolist()
            assert piece.documents[first:last + 1] == block.documents[whole_first:whole_last + 1]
    joined = PackedBlock.concat(pieces)
    assert packed_rows(joined) == packed_rows(block)
    assert joined.documents == block.documents
    assert joined.provenance.tolist() == block.provenance.tolist()
    assert len(PackedBlock.concat([])) == 0 and block.slice(2, 2).documents == ()
