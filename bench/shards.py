"""Token shards: encode + write speed, and ShardReader random access against a plain memmap.

    python bench/shards.py [--examples 200000] [--shards 4] [--batches 800] [--repeats 3]
    python bench/shards.py --corpus ../shared/corpora/{linux-doc,python-doc,perl-doc}.jsonl.gz \
        --tokenizer TOK.model [--objective sop|nsp] [--workers 2]

A synthetic but realistically shaped shard set is built in a temporary folder: examples of
20..125 tokens (uniform), A taking 1..n-1 of them, random ids below vocab 32,000 (uint16
shards), labels 50/50, about 4 examples per source document (B from the next document when the
label is 1, as NSP's random B), given to ``encode_shard`` as Python lists (what
``SentencePieceProcessor.encode`` returns).

(a) ``encode_shard`` + ``shard_info`` + plain file writes, in tokens/s (inputs built untimed);
(b) ``ShardReader.batch`` over batches of 256 random example indices, fetching (A, B, label);
(c) the same token spans read from a plain ``np.memmap`` per shard, with each example's offset
    and length taken from the index in advance (the floor any reader of this layout can reach);
    (c') the same through an ndarray view of the map (np.memmap slicing runs Python code).

(b) and (c) run alternating, best of ``--repeats``, in two modes: "views" (only the slices) and
"collate" (the tokens also copied into a padded 256 x 128 int64 batch, as a collator does).
The files are in the page cache (just written), so this measures lookup overhead, not the disk.
Then ``verify_shards`` and ``shard_stats`` over the whole set.

``--corpus``: shard writing on real text instead. A curation run with only normalize and the shards
on (every document goes to the shards) and the given tokenizer (``winnow tokenizer train`` on the
same files, so no training in the timed run), FnApiRunner multi_processing with ``--workers``;
prints the wall time, the shards stage's own CPU seconds (sentences, tokens, pairs), the size of
the shard folder by kind of file, and ``verify_shards``'s time. Uses only ``run_curation`` and the
config, so the same script measures another tree installed in its own environment.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import tempfile
import time

import numpy as np

from winnow.schemas.shard_format import (
    MANIFEST_FILE,
    DocumentRef,
    ShardManifest,
    encode_shard,
    sha256_bytes,
    shard_info,
    shard_prefix,
)
from winnow.schemas.shard_reader import ShardReader, shard_stats
from winnow.schemas.shard_verify import verify_shards

VOCAB = 32_000
MAX_SEQ_LEN = 128
BATCH = 256
PLAIN_VIEW = "c'"


def make_examples(rng: np.random.Generator, count: int, first_doc: int):
    lengths = rng.integers(20, 126, size=count)
    splits = rng.integers(1, lengths)  # 1 .. length-1
    ids = rng.integers(0, VOCAB, size=int(lengths.sum())).tolist()
    labels = rng.integers(0, 2, size=count).tolist()
    examples, start = [], 0
    for length, split, label in zip(lengths.tolist(), splits.tolist(), labels, strict=True):
        examples.append((ids[start:start + split], ids[start + split:start + length], label))
        start += length
    documents = [DocumentRef(f"doc-{first_doc + i // 4:08d}", "bench.jsonl", first_doc + i // 4)
                 for i in range(count + 4)]
    pairs = [(documents[i], documents[i + 4 * label]) for i, label in enumerate(labels)]
    return examples, pairs, int(lengths.sum())


def build(directory: str, examples_total: int, shards: int, seed: int) -> tuple[float, float, int]:
    rng = np.random.default_rng(seed)
    per_shard = -(-examples_total // shards)
    encode_seconds = write_seconds = 0.0
    infos, tokens_total = [], 0
    for number in range(shards):
        count = min(per_shard, examples_total - number * per_shard)
        examples, pairs, tokens = make_examples(rng, count, number * per_shard)
        started = time.perf_counter()
        encoded = encode_shard(examples, pairs, VOCAB, max_seq_len=MAX_SEQ_LEN)
        prefix = shard_prefix(number)
        infos.append(shard_info(prefix, encoded, count, tokens,
                                len({ref for pair in pairs for ref in pair})))
        encoded_at = time.perf_counter()
        for suffix, data in encoded.items():
            with open(os.path.join(directory, f"{prefix}.{suffix}"), "wb") as handle:
                handle.write(data)
        write_seconds += time.perf_counter() - encoded_at
        encode_seconds += encoded_at - started
        tokens_total += tokens
    tokenizer = b"stand-in tokenizer: the reader never loads it"
    with open(os.path.join(directory, "tokenizer.model"), "wb") as handle:
        handle.write(tokenizer)
    manifest = ShardManifest.create(
        objective="sop", max_seq_len=MAX_SEQ_LEN, vocab_size=VOCAB,
        tokenizer_file="tokenizer.model", tokenizer_sha256=sha256_bytes(tokenizer),
        special_tokens={"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4},
        shards=infos)
    with open(os.path.join(directory, MANIFEST_FILE), "w") as handle:
        handle.write(manifest.to_json())
    return encode_seconds, write_seconds, tokens_total


def read_reader(reader: ShardReader, batches: list[np.ndarray], collate: bool) -> None:
    buffer = np.zeros((BATCH, MAX_SEQ_LEN), dtype=np.int64)
    for indices in batches:
        fetched = reader.batch(indices)
        if collate:
            buffer[:] = 0
            for row, (a, b, _label) in enumerate(fetched):
                buffer[row, :len(a)] = a
                buffer[row, len(a):len(a) + len(b)] = b


def read_plain(spans: list[list[tuple]], collate: bool) -> None:
    buffer = np.zeros((BATCH, MAX_SEQ_LEN), dtype=np.int64)
    for batch in spans:
        if collate:
            buffer[:] = 0
            for row, (tokens, offset, length, _label) in enumerate(batch):
                buffer[row, :length] = tokens[offset:offset + length]
        else:
            [tokens[offset:offset + length] for tokens, offset, length, _label in batch]


def best_of(repeats: int, runs: dict) -> dict[str, float]:
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - started)
    return best


CURATION_STAGES_OFF = ("heuristics", "language", "exact_dedup", "quality", "near_dedup", "pii")


def corpus_run(args: argparse.Namespace) -> None:
    from winnow.pipeline.config import config_from_dict
    from winnow.pipeline.curate import run_curation

    config = config_from_dict({
        **{stage: {"enabled": False} for stage in CURATION_STAGES_OFF},
        "tokenizer": {"model": args.tokenizer},
        "pairs": {"objective": args.objective},
    })
    beam_args = (["--direct_running_mode=multi_processing", f"--direct_num_workers={args.workers}"]
                 if args.workers else [])
    output = args.output or tempfile.mkdtemp(prefix="winnow-bench-shards-")
    try:
        started = time.monotonic()
        report = run_curation(args.corpus, output, config, beam_args, overwrite=True)
        wall = time.monotonic() - started
        shards_dir = os.path.join(output, "shards")
        sizes: dict[str, int] = collections.Counter()
        for name in os.listdir(shards_dir):
            kind = name.split(".", 1)[1] if name.startswith("shard-") else name
            sizes[kind] += os.path.getsize(os.path.join(shards_dir, name))
        started = time.perf_counter()
        problems = verify_shards(shards_dir)
        verify_seconds = time.perf_counter() - started
    finally:
        if not args.output:
            shutil.rmtree(output, ignore_errors=True)
    stage = next(s for s in report["stages"] if s["name"] == "shards")
    shards = report["shards"]
    total = sum(sizes.values())
    print(f"corpus: {report['documents']['input']:,} documents, {stage['bytes_in'] / 1e6:.1f} MB; "
          f"objective {args.objective}; workers: {args.workers or 'in-memory'}")
    print(f"shards: {shards['examples']:,} examples, {shards['tokens']:,} tokens, "
          f"{shards['shards']} shard(s)")
    print(f"wall {wall:.2f} s; shards stage CPU {stage['seconds']:.2f} s")
    print(f"shard folder {total:,} bytes: " + ", ".join(
        f"{kind} {size:,}" for kind, size in sorted(sizes.items())))
    print(f"verify_shards {verify_seconds:.2f} s; problems: {problems}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=200_000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--batches", type=int, default=800, help="random batches of 256 read")
    parser.add_argument("--repeats", type=int, default=3, help="timing rounds (best is kept)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--corpus", nargs="+", metavar="FILE",
                        help="measure shard writing in a curation run on these files instead")
    parser.add_argument("--tokenizer", help="--corpus: the SentencePiece model to use")
    parser.add_argument("--objective", default="sop", choices=("sop", "nsp"))
    parser.add_argument("--workers", type=int, default=2,
                        help="--corpus: DirectRunner multi_processing workers; 0 runs in memory")
    parser.add_argument("--output", help="--corpus: write the run here and keep it (default: a "
                                         "temporary folder, deleted)")
    args = parser.parse_args()
    if args.corpus:
        if not args.tokenizer:
            parser.error("--corpus needs --tokenizer (from winnow tokenizer train)")
        corpus_run(args)
        return

    with tempfile.TemporaryDirectory(prefix="winnow-shards-") as directory:
        encode_seconds, write_seconds, tokens = build(directory, args.examples, args.shards,
                                                      args.seed)
        size = sum(os.path.getsize(os.path.join(directory, name))
                   for name in os.listdir(directory))
        print(f"shard set: {args.examples:,} examples, {tokens:,} tokens (uint16), "
              f"{args.shards} shards, {size / 1e6:.1f} MB on disk")
        total = encode_seconds + write_seconds
        print(f"(a) encode_shard + shard_info + write: {total:6.2f} s "
              f"{tokens / total / 1e6:7.2f} M tokens/s "
              f"(encode {tokens / encode_seconds / 1e6:.2f} M tokens/s, "
              f"write {size / write_seconds / 1e6:.0f} MB/s)")

        reader = ShardReader(directory)
        rng = np.random.default_rng(args.seed + 1)
        batches = [rng.integers(0, len(reader), size=BATCH) for _ in range(args.batches)]
        maps = [np.memmap(os.path.join(directory, f"{shard.name}.tokens.bin"), dtype="<u2",
                          mode="r") for shard in reader.manifest.shards]
        views = [tokens.view(np.ndarray) for tokens in maps]
        indexes = [np.load(os.path.join(directory, f"{shard.name}.index.npy"))
                   for shard in reader.manifest.shards]
        starts = np.concatenate([[0], np.cumsum([len(index) for index in indexes])])
        spans, view_spans, fetched_tokens = [], [], 0
        for indices in batches:
            batch, view_batch = [], []
            for i in indices.tolist():
                shard = int(np.searchsorted(starts, i, side="right")) - 1
                row = indexes[shard][i - starts[shard]]
                offset, length, label = int(row["offset"]), int(row["length"]), int(row["label"])
                batch.append((maps[shard], offset, length, label))
                view_batch.append((views[shard], offset, length, label))
                fetched_tokens += length
            spans.append(batch)
            view_spans.append(view_batch)
        read_reader(reader, batches[:10], True)  # map the files before timing
        for mode, collate in (("views", False), ("collate", True)):
            best = best_of(args.repeats, {
                "b": lambda c=collate: read_reader(reader, batches, c),
                "c": lambda c=collate: read_plain(spans, c),
                PLAIN_VIEW: lambda c=collate: read_plain(view_spans, c),
            })
            rates = {name: fetched_tokens / seconds for name, seconds in best.items()}
            print(f"random batches of {BATCH}, {args.batches} batches, {mode}:")
            print(f"  (b)  ShardReader.batch            {best['b']:6.3f} s "
                  f"{rates['b'] / 1e6:7.2f} M tokens/s "
                  f"{args.batches * BATCH / best['b']:10,.0f} examples/s")
            print(f"  (c)  np.memmap, spans precomputed {best['c']:6.3f} s "
                  f"{rates['c'] / 1e6:7.2f} M tokens/s")
            print(f"  (c') ndarray view, precomputed    {best[PLAIN_VIEW]:6.3f} s "
                  f"{rates[PLAIN_VIEW] / 1e6:7.2f} M tokens/s")
            print(f"  ratio (b)/(c) = {rates['b'] / rates['c']:.2f}, "
                  f"(b)/(c') = {rates['b'] / rates[PLAIN_VIEW]:.2f}")

        started = time.perf_counter()
        problems = verify_shards(directory)
        seconds = time.perf_counter() - started
        print(f"verify_shards: {seconds:.2f} s, {size / seconds / 1e6:.0f} MB/s; problems: "
              f"{problems} (the stand-in tokenizer is expected to be the only one)")
        started = time.perf_counter()
        stats = shard_stats(directory)
        print(f"shard_stats: {time.perf_counter() - started:.2f} s; mean length "
              f"{stats['mean_length']:.1f}, label balance {stats['label_balance']:.3f}")


if __name__ == "__main__":
    main()
