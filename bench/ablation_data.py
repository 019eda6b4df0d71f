"""Held-out text and a labelled task for ``winnow ablate``, from Debian files that no corpus in
../shared/corpora was built from.

Writes into OUT:

- ``heldout.jsonl``: the Debian Administrator's Handbook (English HTML, one record per page:
  its paragraphs of at least five words, one per line): clean technical prose, in no arm's training
  data.
- ``sections-train.jsonl``, ``sections-test.jsonl``: Debian package sections from package
  descriptions. Each row is a package's one-line description (``text``) and its archive section
  (``label``: games, graphics, net, science, sound or text); descriptions that need the words'
  meaning, not a template. Exact duplicate descriptions are dropped, and rows are split into
  train and test by *source package* (hashed), so the binaries of one source (``foo``,
  ``foo-data``) never sit on both sides. At most ``--per-class`` rows per section.

Needs: ``apt-get install debian-handbook`` and apt's package lists (``apt-get update``; the
bookworm main list is read with the ``lz4`` tool).

    python bench/ablation_data.py --output /tmp/ablation-data
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import html.parser
import json
import os
import re
import subprocess
from collections import defaultdict

HANDBOOK = "/usr/share/doc/debian-handbook/html/en-US"
PACKAGE_LISTS = "/var/lib/apt/lists/*_debian_dists_bookworm_main_binary-amd64_Packages.lz4"
SECTIONS = ("games", "graphics", "net", "science", "sound", "text")
TEST_SHARE = 0.25


class ProseOfHtml(html.parser.HTMLParser):
    """The paragraphs (``<div class="para">``, Publican's markup) of an HTML page, one per
    line: prose without the navigation, tables of contents, code listings and figures."""

    def __init__(self):
        super().__init__()
        self.paragraphs: list[list[str]] = []
        self.depth = 0

    def handle_starttag(self, tag, attrs):
        if self.depth and tag == "div":
            self.depth += 1  # a div inside a paragraph
        elif tag == "div" and ("class", "para") in attrs:
            self.depth = 1
            self.paragraphs.append([])
        elif self.depth and tag == "pre":
            self.depth += 1000  # no code listings inside a paragraph

    def handle_endtag(self, tag):
        if self.depth and tag == "pre":
            self.depth -= 1000
        elif self.depth and tag == "div":
            self.depth -= 1

    def handle_data(self, data):
        if 0 < self.depth < 1000:
            self.paragraphs[-1].append(data)

    def text(self) -> str:
        lines = (re.sub(r"\s+", " ", "".join(parts)).strip() for parts in self.paragraphs)
        return "\n".join(line for line in lines if len(line.split()) >= 5)


def handbook_pages() -> list[dict]:
    pages = []
    for path in sorted(glob.glob(os.path.join(HANDBOOK, "*.html"))):
        parser = ProseOfHtml()
        with open(path, encoding="utf-8") as handle:
            parser.feed(handle.read())
        text = parser.text()
        if len(text.split()) >= 50:
            pages.append({"id": os.path.basename(path), "text": text,
                          "source": "debian-handbook", "license": "GPL-2+ or CC-BY-SA-3.0"})
    return pages


def package_stanzas() -> list[dict[str, str]]:
    (path,) = glob.glob(PACKAGE_LISTS)
    text = subprocess.run(["lz4", "-dc", path], check=True, capture_output=True).stdout
    stanzas = []
    for block in text.decode("utf-8").split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines()
                      if ": " in line and not line.startswith(" "))
        if "Package" in fields:
            stanzas.append(fields)
    return stanzas


def section_rows(per_class: int) -> tuple[list[dict], list[dict]]:
    by_section: dict[str, list[dict]] = defaultdict(list)
    seen: set[str] = set()
    for fields in package_stanzas():
        section, description = fields.get("Section", ""), fields.get("Description", "").strip()
        if section not in SECTIONS or not description or description.lower() in seen:
            continue
        seen.add(description.lower())
        source = fields.get("Source", fields["Package"]).split(" ")[0]
        by_section[section].append({"id": fields["Package"], "text": description,
                                    "label": section, "source_package": source})
    train, test = [], []
    for section in SECTIONS:
        rows = sorted(by_section[section], key=lambda row: digest(row["id"]))[:per_class]
        for row in rows:
            (test if digest("split:" + row["source_package"]) < TEST_SHARE else train).append(row)
    return (sorted(train, key=lambda row: digest(row["id"])),
            sorted(test, key=lambda row: digest(row["id"])))


def digest(text: str) -> float:
    """A fixed number in [0, 1) from the text: seeded order and split without an RNG."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16) / 16**12


def write_jsonl(path: str, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", required=True)
    parser.add_argument("--per-class", type=int, default=600)
    args = parser.parse_args()
    os.makedirs(args.output, exist_ok=True)
    pages = handbook_pages()
    write_jsonl(os.path.join(args.output, "heldout.jsonl"), pages)
    train, test = section_rows(args.per_class)
    write_jsonl(os.path.join(args.output, "sections-train.jsonl"), train)
    write_jsonl(os.path.join(args.output, "sections-test.jsonl"), test)
    words = sum(len(page["text"].split()) for page in pages)
    print(f"heldout.jsonl: {len(pages)} handbook pages, {words:,} words")
    for name, rows in (("train", train), ("test", test)):
        counts = {section: sum(row["label"] == section for row in rows) for section in SECTIONS}
        print(f"sections-{name}.jsonl: {len(rows)} rows {counts}")


if __name__ == "__main__":
    main()
