"""A syndication benchmark: articles republished on many sites, built from text winnow was never
tuned on (issue 12). Used by ``bench/dedup_end_to_end.py``, which runs the default config on it.

Source: the Debian Administrator's Handbook (English HTML, Debian package ``debian-handbook``)
and the Debian Reference (``debian-reference-en``), both absent from ``../shared/corpora`` and
from every earlier benchmark:

    apt-get install debian-handbook debian-reference-en

1. **Articles**: each section of the two books (a heading and the paragraphs under it) is an
   article: its title, then one paragraph per line, blank lines between, as news sites lay out
   text. Articles of 250..3,000 words and 3+ paragraphs that the default heuristics and
   language stages keep are used; the others are not (they would be removed for reasons that
   have nothing to do with duplicates).
2. **Sites**: 40 fictional sites, each with one or two lines of its own around an article (a
   masthead, a copyright line), and now and then a line many sites share ("Share this
   article: ..."), as text extraction leaves them. The book itself is a site too: its
   originals carry the book's licence line. These are the lines the ``boilerplate`` stage
   should cut: each appears in many distinct documents.
3. **Clusters**: an original and 1..5 republished copies (2..6 documents), each copy on a site
   of its own with that site's lines, and 1..3 of: small word edits (0.3-1.2% of the words: a 5-gram
   Jaccard loses about 10% per 1%), the book's
   licence line dropped, the last paragraph or 5-15% of the words cut, two paragraphs swapped,
   an editor's note added. One copy in ten is an exact mirror of an earlier member.
   A copy is redrawn until its exact word-5-gram Jaccard to the original is at least the
   threshold + 0.05 (0.85): light edits of a republished article, clear of the threshold's
   noise, so that the benchmark measures how the stages compose.
4. **Near misses** (must stay): for half of the clusters one document that shares much of the
   original and is not a duplicate of it: ``part_one`` (the first 35-50% of the paragraphs, a
   page split in two) or ``rewrite`` (8-15% of the words edited), each on a site, redrawn
   until its exact Jaccard to the original is below the threshold - 0.1.
5. **Singletons**: every article not used above, published once on a site.
6. **Truth**: each original with its copies is one cluster; every near miss and singleton is
   its own. Pairs of different clusters at Jaccard >= the threshold would make that wrong;
   they are looked for (``cross_cluster_pairs``) and reported.
"""

from __future__ import annotations

import glob
import html
import random
import re
from dataclasses import dataclass, field

from near_dup_data import BenchDoc, edit_words, similar_pairs

from winnow.filters.heuristics import HeuristicFilter, HeuristicsConfig
from winnow.filters.language import LanguageConfig, LanguageIdentifier, language_verdict
from winnow.filters.minhash import MinHasher, exact_jaccard
from winnow.filters.normalize import NormalizeConfig, normalize_text

HANDBOOK = "/usr/share/doc/debian-handbook/html/en-US/*.html"
REFERENCE = "/usr/share/debian-reference/*.en.html"
# A heading, or a paragraph: the handbook writes <div class="para">, the reference <p>.
_BLOCK = re.compile(
    r'<h([1-5])[^>]*>(.*?)</h\1>|<div class="para">(.*?)</div>|<p>(.*?)</p>', re.S)
_TAG = re.compile(r"<[^>]+>")
_WORD = re.compile(r"\w+")

BOOK_LINE = "From the Debian documentation, free to share under its licence (GPL-2+)."
SHARED_LINES = (
    "Share this article: Facebook | Twitter | LinkedIn | Reddit | Email | Print",
    "Like what you read? Support independent technology journalism with a subscription.",
    "This article is republished under its original free licence; see the source for details.",
)
SITE_NAMES = tuple(f"{adjective} {noun}" for adjective, noun in zip(
    ("Open", "Free", "Daily", "Weekly", "Linux", "Server", "Admin", "Kernel", "Packet", "Root",
     "Shell", "Stable", "Bright", "Northern", "Pacific", "Metro", "Tux", "Binary", "Cloud",
     "Desktop", "Terminal", "Upstream", "Backport", "Mirror", "Digital", "Silicon", "Harbor",
     "Summit", "Valley", "Coastal", "Capital", "Prairie", "Alpine", "Urban", "Global", "Civic",
     "Modern", "Classic", "Rapid", "Quiet"),
    ("Source", "Times", "Wire", "Digest", "Journal", "Gazette", "Observer", "Herald", "Post",
     "Review", "Bulletin", "Chronicle", "Report", "Ledger", "Tribune", "Monitor", "Dispatch",
     "Courier", "Record", "Weekly", "News", "Register", "Insider", "Letter", "Notes", "Press",
     "Standard", "Signal", "Beacon", "Sentinel", "Today", "Examiner", "Leader", "Star", "Sun",
     "Mail", "Express", "Voice", "Forum", "Compass"), strict=True))
EDITOR_NOTES = (
    "Editor's note: this story has been updated since it was first published.",
    "Editor's note: commands in this article were checked against the current stable release.",
    "Update: a reader pointed out a detail that we have corrected below.",
    "Correction: an earlier version of this article misnamed one of the packages.",
)


@dataclass(frozen=True)
class Article:
    source: str
    title: str
    paragraphs: tuple[str, ...]

    def lines(self) -> list[str]:
        return [self.title, *self.paragraphs]

    @property
    def words(self) -> int:
        return sum(len(_WORD.findall(line)) for line in self.lines())


@dataclass
class SyndicationBenchmark:
    docs: list[BenchDoc]
    threshold: float
    articles: int
    """Articles of the allowed size that the heuristics and language stages keep."""
    rejected: int
    """Copies and near misses given up after 10 draws (removed by those stages, or too close
    to the threshold)."""
    joined: list[tuple[str, str, float]] = field(default_factory=list)
    """Pairs of different truth clusters at exact Jaccard >= threshold (expected: none)."""
    boilerplate_lines: frozenset[str] = frozenset()
    """Every line the builder added around articles (sites, the book's licence, editor's
    notes): the lines the ``boilerplate`` stage may cut. Any other line cut is a fragment."""


@dataclass(frozen=True)
class Site:
    name: str
    header: tuple[str, ...]
    footer: tuple[str, ...]


# -- articles ------------------------------------------------------------------------------------

def _clean(fragment: str) -> str:
    return " ".join(html.unescape(_TAG.sub("", fragment)).split())


def read_articles(pattern: str, source: str) -> list[Article]:
    """Every section (heading + paragraphs) of the HTML files matching ``pattern``."""
    articles = []
    for path in sorted(glob.glob(pattern)):
        with open(path, encoding="utf-8") as handle:
            page = handle.read()
        title, paragraphs = None, []
        for match in _BLOCK.finditer(page):
            if match.group(1):
                if title and paragraphs:
                    articles.append(Article(source, title, tuple(paragraphs)))
                title, paragraphs = _clean(match.group(2)), []
            else:
                text = _clean(match.group(3) or match.group(4) or "")
                if text:
                    paragraphs.append(text)
        if title and paragraphs:
            articles.append(Article(source, title, tuple(paragraphs)))
    return articles


class UnrelatedStages:
    """The default heuristics and language verdicts: a benchmark document they would remove
    is not used (it would measure those stages, not deduplication)."""

    def __init__(self):
        self.heuristics = HeuristicFilter(HeuristicsConfig())
        self.language_config = LanguageConfig()
        self.language = LanguageIdentifier(self.language_config.model)
        self.normalize = NormalizeConfig()

    def keep(self, text: str) -> bool:
        text = normalize_text(text, self.normalize)
        if not text or self.heuristics(text):
            return False
        language, score = self.language.predict(text)
        return language_verdict(language, score, self.language_config) is None


# -- sites and copies ----------------------------------------------------------------------------

def make_sites(count: int, rng: random.Random) -> list[Site]:
    """Sites with one or two lines of their own around each article (a masthead, a copyright
    line) and now and then a line many sites share: what text extraction leaves of a page."""
    sites = []
    for name in SITE_NAMES[:count]:
        year = rng.randint(1998, 2019)
        header = (f"{name}: independent news about free software since {year}",)
        footer = [f"Copyright {year}-2024 {name} Media. All rights reserved."]
        footer += rng.sample(SHARED_LINES, rng.randint(0, 1))
        sites.append(Site(name, header[:rng.randint(0, 1)], tuple(footer)))
    return sites


def layout(lines: list[str]) -> str:
    return "\n\n".join(lines)


def original_text(article: Article) -> str:
    return layout(article.lines() + [BOOK_LINE])


def republish(article_lines: list[str], site: Site) -> str:
    return layout([*site.header, *article_lines, *site.footer])


def copy_lines(article: Article, vocabulary: list[str],
               rng: random.Random) -> tuple[str, list[str]]:
    """(the edits made, the article's lines as one site republished it)."""
    lines = article.lines() + [BOOK_LINE]
    edits = rng.sample(("edit", "drop_book_line", "truncate", "reorder", "note"), rng.randint(1, 3))
    for edit in sorted(edits):
        if edit == "edit":
            rate = rng.uniform(0.003, 0.012)
            lines = [edit_words(line, rate, vocabulary, rng) if index else line
                     for index, line in enumerate(lines)]
        elif edit == "drop_book_line":
            lines = [line for line in lines if line != BOOK_LINE]
        elif edit == "truncate":
            lines = _truncate(lines, rng)
        elif edit == "reorder" and len(lines) > 4:
            first = rng.randrange(1, len(lines) - 2)
            lines[first], lines[first + 1] = lines[first + 1], lines[first]
        elif edit == "note":
            lines.insert(1, rng.choice(EDITOR_NOTES))
    return "+".join(sorted(edits)), lines


def _truncate(lines: list[str], rng: random.Random) -> list[str]:
    """Drop the last 5-15% of the words: the last paragraph when it is that short, else in
    the middle of a paragraph ("Read the rest on ...")."""
    body = [line for line in lines if line != BOOK_LINE]
    share = rng.uniform(0.05, 0.15)
    words = layout(body).split(" ")
    if len(body) > 3 and len(body[-1].split(" ")) <= share * len(words):
        return body[:-1]
    kept = " ".join(words[:max(1, round(len(words) * (1 - share)))])
    return kept.split("\n\n")


def near_miss(article: Article, vocabulary: list[str],
              rng: random.Random) -> tuple[str, list[str]]:
    """A page split in two (its first part), or the story rewritten (8-15% of the words)."""
    if rng.random() < 0.5:
        share = rng.uniform(0.35, 0.5)
        count = max(1, round(len(article.paragraphs) * share))
        return "part_one", [f"{article.title} (part 1)", *article.paragraphs[:count],
                            "Continued in part two."]
    rate = rng.uniform(0.08, 0.15)
    return "rewrite", [article.title, *(edit_words(p, rate, vocabulary, rng)
                                        for p in article.paragraphs)]


# -- the benchmark -------------------------------------------------------------------------------

def build_syndication_benchmark(clusters: int, threshold: float, seed: int,
                                near_miss_share: float = 0.5,
                                margin: float = 0.05) -> SyndicationBenchmark:
    """Copies are redrawn until their exact Jaccard to the original is at least ``threshold +
    margin``, near misses until it is below ``threshold - 2 * margin``: the benchmark measures
    how the stages compose, not the noise of one threshold (``bench/dedup_quality.py`` does)."""
    rng = random.Random(seed)
    unrelated = UnrelatedStages()
    articles = [a for a in read_articles(HANDBOOK, "debian-handbook")
                + read_articles(REFERENCE, "debian-reference")
                if 250 <= a.words <= 3000 and len(a.paragraphs) >= 3]
    articles = [a for a in articles if unrelated.keep(original_text(a))]
    rng.shuffle(articles)
    originals, singletons = articles[:clusters], articles[clusters:]
    vocabulary = sorted({w for a in singletons for line in a.lines()
                         for w in _WORD.findall(line)})
    sites = make_sites(len(SITE_NAMES), rng)
    added_lines = {BOOK_LINE, *SHARED_LINES, *EDITOR_NOTES}
    added_lines.update(line for site in sites for line in site.header + site.footer)
    benchmark = SyndicationBenchmark([], threshold, len(articles), 0,
                                     boilerplate_lines=frozenset(added_lines))
    family = _FamilyBuilder(benchmark, unrelated, vocabulary, sites, rng, margin)
    for number, article in enumerate(originals):
        family.add(number, article, near_miss_share)
    for number, article in enumerate(singletons, len(originals)):
        doc_id = f"s{number:04d}"
        text = normalize_text(republish(article.lines(), rng.choice(sites)), family.normalize)
        benchmark.docs.append(BenchDoc(doc_id, text, number, "singleton", truth_cluster=doc_id))
    benchmark.joined = cross_cluster_pairs(benchmark.docs, threshold, family.hasher)
    return benchmark


class _FamilyBuilder:
    """Adds one original, its copies and its near miss to a benchmark."""

    def __init__(self, benchmark: SyndicationBenchmark, unrelated: UnrelatedStages,
                 vocabulary: list[str], sites: list[Site], rng: random.Random, margin: float):
        self.benchmark = benchmark
        self.unrelated = unrelated
        self.vocabulary = vocabulary
        self.sites = sites
        self.rng = rng
        self.margin = margin
        self.hasher = MinHasher()
        self.normalize = NormalizeConfig()

    def add(self, family: int, article: Article, near_miss_share: float) -> None:
        rng, threshold = self.rng, self.benchmark.threshold
        base = f"c{family:04d}"
        original = normalize_text(original_text(article), self.normalize)
        hashes = self.hasher.shingle_hashes(original)
        members = [("original", original)]
        for site in rng.sample(self.sites, rng.randint(1, 5)):
            if rng.random() < 0.1:
                members.append(("mirror", rng.choice(members)[1]))
                continue
            copy = self.draw(lambda site=site: _copy(article, site, self.vocabulary, rng),
                             hashes, lambda j: j >= threshold + self.margin)
            members += [copy] if copy else []
        for number, (kind, text) in enumerate(members):
            suffix = "orig" if kind == "original" else f"{number}-{kind}"
            self.append(f"{base}-{suffix}", text, family, kind, hashes, f"{base}-orig")
        if rng.random() >= near_miss_share:
            return
        drawn = self.draw(
            lambda: _published(near_miss(article, self.vocabulary, rng), self.sites, rng),
            hashes, lambda j: j < threshold - 2 * self.margin)
        if drawn:
            doc_id = f"{base}-near-{drawn[0]}"
            self.append(doc_id, drawn[1], family, f"near_miss:{drawn[0]}", hashes, doc_id)

    def draw(self, make, hashes, accept, tries: int = 10) -> tuple[str, str] | None:
        """(kind, normalized text) of the first draw the stages keep whose Jaccard to the
        original (``hashes``) ``accept`` takes; None after ``tries`` (counted as rejected)."""
        for _ in range(tries):
            kind, text = make()
            text = normalize_text(text, self.normalize)
            if self.unrelated.keep(text) and accept(self.jaccard(hashes, text)):
                return kind, text
        self.benchmark.rejected += 1
        return None

    def jaccard(self, hashes, text: str) -> float:
        return exact_jaccard(hashes, self.hasher.shingle_hashes(text))

    def append(self, doc_id: str, text: str, family: int, kind: str, hashes,
               truth_cluster: str) -> None:
        self.benchmark.docs.append(BenchDoc(doc_id, text, family, kind,
                                            self.jaccard(hashes, text), truth_cluster))


def _copy(article: Article, site: Site, vocabulary: list[str],
          rng: random.Random) -> tuple[str, str]:
    kind, lines = copy_lines(article, vocabulary, rng)
    return kind, republish(lines, site)


def _published(kind_and_lines: tuple[str, list[str]], sites: list[Site],
               rng: random.Random) -> tuple[str, str]:
    kind, lines = kind_and_lines
    return kind, republish(lines, rng.choice(sites))


def cross_cluster_pairs(docs: list[BenchDoc], threshold: float,
                        hasher: MinHasher) -> list[tuple[str, str, float]]:
    """Pairs of documents in different truth clusters at exact Jaccard >= ``threshold``: the
    truth would be wrong about them. Reported (expected: none)."""
    hash_sets = [hasher.shingle_hashes(doc.text) for doc in docs]
    return [(docs[a].id, docs[b].id, similarity)
            for a, b, similarity in similar_pairs(hash_sets, threshold, hasher)
            if docs[a].truth_cluster != docs[b].truth_cluster]
