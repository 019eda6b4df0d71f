"""Private data outside document text: ids, input file names, input fields and raw quarantined
lines that hold emails and phone numbers. With the pii stage on, none of it may reach any byte
of the run folder nor anything ``winnow report`` or ``winnow shards show`` prints, and the
redacted ids and file names must still join (kept/ to shards/*.documents.jsonl, a removal's
survivor_id to the survivor's row). With the stage off, all of it is there (so this test can
see a leak at all), and the stage changes no decision."""

import contextlib
import gzip
import io
import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.pipeline.report_runs import SAMPLE
from winnow.cli import main
from winnow.pipeline.config import config_from_dict
from winnow.pipeline.curate import run_curation
from winnow.schemas.shard_reader import ShardReader, read_documents

FILE_A = "john.doe@example.com.jsonl"
FILE_C = "mary.major@example.net.jsonl"  # redacted, it would collide with FILE_A's name
FILE_T = "ann.other@example.com.txt"  # a plain-text document: its id is its path
ID_EMAIL = "a-jane.roe@example.org"  # survives an exact duplicate
ID_PHONE = "doc +1 415 555 2671"
ID_NEAR = "c-near.owner@example.com"  # survives (and names) a near-duplicate cluster
ID_SHORT = "short.person@example.com"  # removed: too_few_words, a report example
FIELD_EMAIL = "field.author@example.net"
FIELD_PHONE = "+44 20 7946 0958"
RAW_EMAIL, RAW_PHONE = "raw.person@example.com", "+1 212 555 0199"
PLANTED = [FILE_A.removesuffix(".jsonl"), FILE_C.removesuffix(".jsonl"),
           FILE_T.removesuffix(".txt"), ID_EMAIL, ID_PHONE, ID_NEAR, ID_SHORT, FIELD_EMAIL,
           FIELD_PHONE, RAW_EMAIL, RAW_PHONE]
# Pieces that would still identify them: local parts, and phone digits however grouped.
FORBIDDEN = [*PLANTED, "john.doe", "mary.major", "ann.other", "jane.roe", "near.owner",
             "short.person", "field.author", "raw.person", "415 555 2671", "4155552671",
             "7946 0958", "79460958", "212 555 0199", "2125550199"]

# Real prose that the default stages keep, and without PII of its own (so that both runs curate
# the same texts): Python documentation pages of the bundled sample.
SAMPLE_IDS = ["python-doc/c-api/iter.rst.txt", "python-doc/c-api/iterator.rst.txt",
              "python-doc/faq/gui.rst.txt", "python-doc/library/fractions.rst.txt",
              "python-doc/library/asyncio-extending.rst.txt",
              "python-doc/library/asyncio-runner.rst.txt", "python-doc/library/ensurepip.rst.txt",
              "python-doc/c-api/slice.rst.txt", "python-doc/library/getopt.rst.txt"]
REASONS = ["exact_duplicate", "near_duplicate", "too_few_words", "malformed_json"]


def sample_texts() -> list[str]:
    with gzip.open(SAMPLE / "docs.jsonl.gz", "rt", encoding="utf-8") as lines:
        records = {record["id"]: record["text"] for record in map(json.loads, lines)}
    return [records[doc_id] for doc_id in SAMPLE_IDS]


def jsonl(records: list) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n"
                    for r in records)


def write_inputs(folder: Path) -> None:
    texts = sample_texts()
    near_copy = texts[3].replace(" the ", " a ", 1)
    folder.mkdir()
    (folder / FILE_A).write_bytes(jsonl([
        {"text": texts[0], "license": "PSF-2.0"},  # no id: "<file>:0"
        {"id": ID_EMAIL, "text": texts[1], "license": "PSF-2.0",
         "author": FIELD_EMAIL, "contact": {"phones": [FIELD_PHONE]}},
        b'{"id": "broken", "text": "write to ' + RAW_EMAIL.encode() + b" or call "
        + RAW_PHONE.encode() + b'"',
        {"id": ID_PHONE, "text": texts[2], "license": "PSF-2.0"},
        {"id": ID_NEAR, "text": texts[3], "license": "PSF-2.0"},
    ]))
    (folder / FILE_C).write_bytes(jsonl([{"text": texts[4], "license": "PSF-2.0"}]))
    (folder / FILE_T).write_text(texts[5], encoding="utf-8")
    (folder / "notes.jsonl").write_bytes(jsonl([
        {"id": "z-copy", "text": texts[1], "license": "PSF-2.0"},
        {"id": "zz-near", "text": near_copy, "license": "PSF-2.0"},
        {"id": ID_SHORT, "text": "Far too short to keep.", "license": "PSF-2.0"},
        *({"id": f"notes-{i}", "text": text, "license": "PSF-2.0"}
          for i, text in enumerate(texts[6:])),
    ]))


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """The inputs curated with the pii stage on and off. Both runs read the same paths: the
    paths are ids and seed the pairing, which the two runs must share."""
    base = tmp_path_factory.mktemp("pii-outside-text")
    inputs = base / "inputs"
    write_inputs(inputs)
    runs = {}
    for name, enabled in (("on", True), ("off", False)):
        runs[name] = base / name / "run"
        config = config_from_dict({"pii": {"enabled": enabled},
                                   "tokenizer": {"vocab_size": 600},
                                   "pairs": {"max_seq_len": 64}})
        # The file is also named alone, so report.json's inputs name it.
        run_curation([str(inputs), str(inputs / FILE_A)], str(runs[name]), config)
    return runs


@pytest.fixture(scope="module")
def run_on(runs) -> Path:
    return runs["on"]


@pytest.fixture(scope="module")
def run_off(runs) -> Path:
    return runs["off"]


def folder_text(run_dir: Path) -> dict[str, str]:
    """Every file of the run folder as text: its raw bytes (Parquet footers hold column
    statistics in clear), and for Parquet also every decoded value."""
    texts = {}
    for path in sorted(p for p in run_dir.rglob("*") if p.is_file()):
        text = path.read_bytes().decode("utf-8", "replace")
        if path.suffix == ".parquet":
            rows = pq.read_table(path).to_pylist()
            text += json.dumps(rows, default=lambda v: v.decode("utf-8", "replace"),
                               ensure_ascii=False)
        texts[str(path.relative_to(run_dir))] = text
    return texts


def command_output(*argv: str) -> str:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        code = main(list(argv))
    assert code == 0, printed.getvalue()
    return printed.getvalue()


def shown(run_dir: Path) -> dict[str, str]:
    """What the commands print about the run (and the HTML page they write)."""
    examples = str(len(ShardReader(run_dir / "shards")))
    page = run_dir.parent / "report.html"
    outputs = {
        "report": command_output("report", str(run_dir)),
        "report --json": command_output("report", str(run_dir), "--json"),
        "report --html": command_output("report", str(run_dir), "--html", str(page)),
        "shards show --provenance": command_output(
            "shards", "show", str(run_dir), "-n", examples, "--provenance"),
        "shards show --provenance --json": command_output(
            "shards", "show", str(run_dir), "-n", examples, "--provenance", "--json"),
    }
    outputs["html page"] = page.read_text(encoding="utf-8")
    for reason in REASONS:
        outputs[f"report --reason {reason}"] = command_output(
            "report", str(run_dir), "--reason", reason, "-n", "20")
    return outputs


def leaks(texts: dict[str, str]) -> dict[str, list[str]]:
    return {name: found for name, text in texts.items()
            if (found := [value for value in FORBIDDEN if value in text])}


def test_no_planted_value_reaches_the_run_folder(run_on):
    assert leaks(folder_text(run_on)) == {}


def test_no_planted_value_is_shown_by_the_commands(run_on):
    assert leaks(shown(run_on)) == {}


def test_every_planted_value_is_written_when_the_stage_is_off(run_off):
    everything = "".join(folder_text(run_off).values())
    assert [value for value in PLANTED if value not in everything] == []
    printed = "".join(shown(run_off).values())
    assert [value for value in (FILE_A, ID_EMAIL, ID_SHORT, FIELD_EMAIL, FILE_T)
            if value not in printed] == []


def test_the_run_exercises_every_place(run_on):
    report = json.loads((run_on / "report.json").read_text())
    for reason in REASONS[:3]:
        assert report["documents"]["removed"].get(reason) == 1, reason
    assert report["documents"]["quarantined"] == {"malformed_json": 1}
    assert report["near_dedup"]["largest_clusters"][0]["size"] == 2
    kept = pq.read_table(run_on / "kept").to_pylist()
    assert len(kept) == len(SAMPLE_IDS)  # one document per text: its copies are removed
    assert command_output("shards", "verify", str(run_on)).endswith(": ok\n")


def test_redacted_ids_and_file_names_still_join(run_on):
    kept = pq.read_table(run_on / "kept").to_pylist()
    refs = {(row["id"], row["input_file"], row["input_position"]) for row in kept}
    assert len(refs) == len(kept)
    files = {Path(row["input_file"]).name for row in kept}
    assert files == {"<EMAIL>.jsonl", "<EMAIL>~2.jsonl", "<EMAIL>.txt", "notes.jsonl"}
    documents = [ref for path in sorted((run_on / "shards").glob("*.documents.jsonl"))
                 for ref in read_documents(path)]
    assert {tuple(ref) for ref in documents} <= refs
    # The first records of FILE_A and FILE_C have no id ("<file>:0") and the same position:
    # only the unique file names keep their refs apart.
    colliding = {(row["id"], row["input_file"], 0) for row in kept
                 if row["input_position"] == 0 and "<EMAIL>" in row["input_file"]
                 and row["input_file"].endswith(".jsonl")}
    assert len(colliding) == 2 and colliding <= {tuple(ref) for ref in documents}
    removed = {row["reason"]: row for row in pq.read_table(run_on / "removed").to_pylist()}
    survivors = {json.loads(row["details"])["survivor_id"]
                 for row in removed.values() if "survivor_id" in row["details"]}
    assert survivors == {"<EMAIL>"} and "<EMAIL>" in {row["id"] for row in kept}
    authors = [row["fields"] for row in kept if row["fields"]["author"] is not None]
    assert authors == [{"license": "PSF-2.0", "author": "<EMAIL>",
                        "contact": {"phones": ["<PHONE>"]}}]


def test_redaction_changes_no_decision(run_on, run_off):
    def outcomes(run_dir: Path) -> Counter:
        rows = [(folder, row) for folder in ("kept", "removed", "quarantined")
                for row in pq.read_table(run_dir / folder).to_pylist()]
        return Counter((folder, Path(row["input_file"]).suffix, row["input_position"],
                        row.get("reason")) for folder, row in rows)

    assert outcomes(run_on) == outcomes(run_off)
    # The same examples in the same order, from the same documents.
    for suffix in ("tokens.bin", "index.npy"):
        assert [path.read_bytes() for path in sorted((run_on / "shards").glob(f"*.{suffix}"))] \
            == [path.read_bytes() for path in sorted((run_off / "shards").glob(f"*.{suffix}"))]

    def pairing(run_dir: Path) -> list[tuple]:
        reader = ShardReader(run_dir / "shards")
        return [tuple((Path(ref.input_file).suffix, ref.input_position)
                      for ref in reader.provenance(i)) for i in range(len(reader))]

    assert pairing(run_on) == pairing(run_off) != []
