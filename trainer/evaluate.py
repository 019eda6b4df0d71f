"""Held-out evaluation of a pretrained encoder on any text: ``winnow evaluate``.

The text takes the path the shards take, through the same functions: each document is cut into
sentences (``filters.sentences.document_sentences``, curation's default SentencesConfig),
tokenized with the model's SentencePiece model (``filters.tokenizer.Tokenizer``), and paired
with the model's objective and max_seq_len (``filters.pairs.group_examples``, PairsConfig's
defaults, seeded with ``seed``) in groups of ``GROUP_DOCUMENTS`` documents in input order (NSP
draws its random ``B`` segments from the group). The examples are laid out and masked as in
pretraining (``trainer.data.ExampleBatcher``, BERT's default MaskingConfig unless one is given):
example ``i`` in input order is masked with the random numbers of (seed, 0, i), so the figures
depend on the text, the model and the seed only, never on the batch size.

What is reported (``evaluate_text``'s dict, the JSON of ``winnow evaluate --json``)::

    loss, mlm_loss, pair_loss, mlm_accuracy, sop_accuracy (or nsp_accuracy)
        the names and definitions of the held-out entries of a run's metrics.jsonl: mlm_loss is
        the mean cross-entropy (nats) over the masked tokens, pair_loss the mean over examples
    mlm_bits_per_byte
        the masked tokens' summed cross-entropy in bits over the UTF-8 bytes those tokens stand
        for: sum(NLL) / (ln 2 * masked_bytes). Only masked tokens are predicted in MLM, so this
        is bits per byte *of the masked text*, a figure that compares models whose tokenizers
        differ (a tokenizer with longer pieces has a higher loss per token but the same text).
        A piece's bytes are those of its text with U+2581 as a space (so a word-initial piece
        counts the space before its word; the first word of a sentence too, standing for the
        whitespace before the sentence), a byte-fallback piece 1, [UNK] and the special
        tokens 0
    counts
        files, rows, documents (rows with text), problem_rows {reason: rows} (trainer.rows'
        reasons, and missing_text, invalid_text, empty_text), text_bytes (UTF-8 bytes of
        the documents' text), examples, label_1, tokens (of A and B), masked_tokens,
        masked_bytes, single_segment_chunks (one-sentence chunks that make no pair),
        truncated_examples. With max_examples, reading stops at the end of the group that
        gives the last example: rows, documents, text_bytes, single_segment_chunks and
        truncated_examples count the groups read
"""

from __future__ import annotations

import itertools
import math
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from winnow.filters.pairs import (
    PairExample,
    PairsConfig,
    PairStats,
    group_examples,
    packed_examples,
)
from winnow.filters.sentences import SentencesConfig, document_sentences
from winnow.filters.tokenizer import Tokenizer
from winnow.schemas.shard_format import DocumentRef
from winnow.trainer.data import (
    IGNORE_INDEX,
    WORD_BOUNDARY,
    ExampleBatcher,
    MaskingConfig,
    to_tensors,
)
from winnow.trainer.metrics import Sums, batch_counts, output_sums, summarize
from winnow.trainer.pretrained import Pretrained
from winnow.trainer.rows import expand_files, read_rows, row_format, text_problem

GROUP_DOCUMENTS = 1_000
"""Documents paired at once, in input order (curation's default shards.group_documents)."""
DEFAULT_BATCH_SIZE = 64


class EvaluateError(Exception):
    """A problem with the text to evaluate on (no file, no example); the message says which."""


@dataclass
class TextCounts:
    """What reading, pairing and masking the text met: the report's ``counts``."""

    files: int = 0
    rows: int = 0
    documents: int = 0
    problem_rows: Counter = field(default_factory=Counter)
    text_bytes: int = 0
    examples: int = 0
    label_1: int = 0
    tokens: int = 0
    masked_tokens: int = 0
    masked_bytes: int = 0
    pairs: PairStats = field(default_factory=PairStats)
    """Of every group read (with max_examples, maybe more examples than were evaluated)."""

    def as_dict(self) -> dict[str, Any]:
        return {"files": self.files, "rows": self.rows, "documents": self.documents,
                "problem_rows": dict(sorted(self.problem_rows.items())),
                "text_bytes": self.text_bytes, "examples": self.examples,
                "label_1": self.label_1, "tokens": self.tokens,
                "masked_tokens": self.masked_tokens, "masked_bytes": self.masked_bytes,
                "single_segment_chunks": self.pairs.skipped_single_segment,
                "truncated_examples": self.pairs.truncated}


def evaluate_text(pretrained: Pretrained, files: list[str], seed: int = 0,
                  text_field: str = "text", batch_size: int = DEFAULT_BATCH_SIZE,
                  max_examples: int | None = None,
                  masking: MaskingConfig | None = None) -> dict[str, Any]:
    """Masked-LM and SOP/NSP figures of ``pretrained`` on the documents of ``files`` (files,
    folders or globs in the formats ``trainer.rows`` reads; the text is ``text_field``, the
    whole file for plain text), the first ``max_examples`` examples when given. See the module
    docstring for what the dict holds. EvaluateError when no file matches or no example can
    be made; rows that cannot be used are counted, never raised."""
    if batch_size < 1 or (max_examples is not None and max_examples < 1):
        raise EvaluateError(f"batch_size and max_examples must be at least 1, got {batch_size} "
                            f"and {max_examples}")
    try:
        paths = expand_files(files)
    except FileNotFoundError as error:
        raise EvaluateError(str(error)) from None
    counts = TextCounts(files=len(paths))
    try:
        tokenizer = Tokenizer(_read(pretrained.tokenizer_path))
    except ValueError as error:  # not the special-token layout curation's shards have
        raise EvaluateError(f"{pretrained.tokenizer_path}: {error}") from None
    pairs = PairsConfig(objective=pretrained.objective, max_seq_len=pretrained.max_seq_len,
                        seed=seed)
    examples = text_examples(read_documents(paths, text_field, counts), tokenizer, pairs,
                             SentencesConfig(), counts.pairs,
                             separator=pretrained.special_tokens["[SEP]"])
    batcher = ExampleBatcher(pretrained.tokenizer_path, pretrained.special_tokens,
                             pretrained.config.vocab_size, pretrained.max_seq_len, seed, masking)
    sums = _evaluate(pretrained, batcher, itertools.islice(examples, max_examples), batch_size,
                     piece_bytes(tokenizer), counts)
    if not sums.examples:
        needed = "a sentence" if pretrained.objective == "mlm" else "two sentences to pair"
        raise EvaluateError(f"no examples in {', '.join(files)}: {counts.documents} documents, "
                            f"none with {needed}")
    figures = summarize(sums, pretrained.objective)
    return {
        "model": pretrained.source, "kind": pretrained.kind, "step": pretrained.step,
        "objective": pretrained.objective, "max_seq_len": pretrained.max_seq_len,
        "vocab_size": pretrained.config.vocab_size, "seed": seed, "text_field": text_field,
        "files": paths,
        **figures,
        "mlm_bits_per_byte": sums.mlm_loss_sum / math.log(2) / max(counts.masked_bytes, 1),
        "counts": counts.as_dict(),
    }


def read_documents(paths: list[str], text_field: str,
                   counts: TextCounts) -> Iterator[tuple[DocumentRef, str]]:
    """(ref, text) of every row of ``paths`` with text, in file order; the others are counted
    in ``counts.problem_rows`` by reason. A row's ref is (its ``id`` field, or its position
    when it has none; the file; its position)."""
    for path in paths:
        name = "text" if row_format(path) == "text" else text_field
        for row in read_rows(path):
            counts.rows += 1
            problem = row.problem or text_problem(row.values, name)
            if problem:
                counts.problem_rows[problem] += 1
                continue
            text = row.values[name]
            counts.documents += 1
            counts.text_bytes += len(text.encode("utf-8", "surrogatepass"))
            doc_id = row.values.get("id")
            yield DocumentRef(str(row.position if doc_id is None else doc_id), path,
                              row.position), text


def text_examples(documents: Iterable[tuple[DocumentRef, str]], tokenizer: Tokenizer,
                  pairs: PairsConfig, sentences: SentencesConfig,
                  stats: PairStats, separator: int | None = None) -> Iterator[PairExample]:
    """The sentence-pair examples of ``documents`` as curation's shards would cut them (see the
    module docstring), in input order by group, then by (ref, index) within a group. For
    ``pairs.objective`` "mlm", the packed sequences (B empty, label 0; ``doc_a`` and ``doc_b``
    their first and last document), ``separator`` ([SEP]'s id) between documents."""
    documents = iter(documents)
    while group := list(itertools.islice(documents, GROUP_DOCUMENTS)):
        tokenized = [(ref, tokenizer.encode(document_sentences(text, sentences)))
                     for ref, text in group]
        if pairs.objective == "mlm":
            block = packed_examples(tokenized, pairs, separator, stats)
            for index, ((a, b, _), (first, last)) in enumerate(
                    zip(block.rows(), block.provenance.tolist(), strict=True)):
                yield PairExample(a, b, 0, block.documents[first], block.documents[last], index)
            continue
        examples = group_examples(tokenized, pairs, stats)
        yield from sorted(examples, key=lambda example: (example.doc_a, example.index))


def piece_bytes(tokenizer: Tokenizer) -> np.ndarray:
    """(vocab_size,) int64: the UTF-8 bytes each piece stands for (see the module docstring)."""
    processor = tokenizer.processor
    return np.array([0 if processor.is_control(i) or processor.is_unknown(i)
                     or processor.is_unused(i) else 1 if processor.is_byte(i)
                     else len(processor.id_to_piece(i).replace(WORD_BOUNDARY, " ").encode())
                     for i in range(processor.get_piece_size())], dtype=np.int64)


@torch.no_grad()
def _evaluate(pretrained: Pretrained, batcher: ExampleBatcher, examples: Iterable[PairExample],
              batch_size: int, byte_counts: np.ndarray, counts: TextCounts) -> Sums:
    """The loss sums over every example, batch by batch; their counts added to ``counts``."""
    model, device = pretrained.model, pretrained.device
    model.eval()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    sums, first = Sums(), 0
    examples = iter(examples)
    while chunk := list(itertools.islice(examples, batch_size)):
        indices = np.arange(first, first + len(chunk))
        arrays = batcher.build([(e.tokens_a, e.tokens_b, e.label) for e in chunk],
                               np.zeros(len(chunk), dtype=np.int64), indices)
        masked = arrays["mlm_labels"][arrays["mlm_labels"] != IGNORE_INDEX]  # (M,) ids
        counts.examples += len(chunk)
        counts.label_1 += sum(e.label for e in chunk)
        counts.tokens += sum(len(e.tokens_a) + len(e.tokens_b) for e in chunk)
        counts.masked_tokens += len(masked)
        counts.masked_bytes += int(byte_counts[masked].sum())
        batch = to_tensors(arrays)
        with autocast:
            out = model(**{key: value.to(device) for key, value in batch.items()})
        found = output_sums(out, batch["pair_labels"].to(device)) + batch_counts(batch)
        sums = sums + Sums(*(float(value) for value in found.values()))
        first += len(chunk)
    return sums


def _read(path: str) -> bytes:
    with open(os.fspath(path), "rb") as handle:
        return handle.read()


def format_table(result: dict[str, Any]) -> str:
    """``evaluate_text``'s result as the small table ``winnow evaluate`` prints."""
    counts, pair = result["counts"], result["objective"]
    step = "" if result["step"] is None else f", step {result['step']}"
    problems = ", ".join(f"{reason} {rows}" for reason, rows in counts["problem_rows"].items())
    lines = [
        f"model     {result['model']} ({result['kind']}{step}; {pair}, max_seq_len "
        f"{result['max_seq_len']}, vocab {result['vocab_size']})",
        f"text      {counts['files']} file(s), {counts['documents']:,} documents, "
        f"{counts['examples']:,} examples, {counts['tokens']:,} tokens "
        f"({counts['masked_tokens']:,} masked, {counts['masked_bytes']:,} bytes; seed "
        f"{result['seed']})",
        *([f"problems  {problems} (rows left out)"] if problems else []),
        "",
        f"mlm loss           {result['mlm_loss']:.4f}  nats per masked token",
        f"mlm accuracy       {result['mlm_accuracy']:.4f}",
        f"mlm bits per byte  {result['mlm_bits_per_byte']:.4f}  of the masked text",
    ]
    if "pair_loss" in result:  # an mlm model has no pair head
        lines += [f"{pair} loss           {result['pair_loss']:.4f}",
                  f"{pair} accuracy       {result[f'{pair}_accuracy']:.4f}"]
    return "\n".join(lines)
