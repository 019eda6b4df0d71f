"""winnow against datatrove, the same curation on the same corpus: throughput and kept sets.

    python bench/compare_datatrove.py [INPUT.jsonl.gz ...] [--limit-mb 4] [--workers 1,2] \
        [--heuristics gopher|gopher+repetition] [--exact-dedup] [--datatrove-alpha-ratio 0.8] \
        [--train-tokenizers] [--winnow-runs 3] [--dt-python /work/dt-venv/bin/python] \
        [--keep-dir DIR] [--json PATH]

Inputs default to the English corpora ../shared/corpora/{linux-doc,python-doc,perl-doc}.jsonl.gz
(about 45 MB of text). ``--limit-mb N`` takes the first records of each file, in proportion to
its size, up to N MB of text in all, for trials. Both sides read the same .jsonl.gz copies.

datatrove (0.10, run as a subprocess in its own virtual environment with this same file and
``--datatrove-side``; LocalPipelineExecutor with 1 task and 1 worker per group, as its
multiprocess pool stalls here; the bucket group runs its 14 tasks one after the other):

  filters     JsonlReader -> GopherQualityFilter [-> GopherRepetitionFilter] -> LanguageFilter
              (fastText lid.176 from winnow's bundled lid.176.ftz through a file:// MODEL_URL;
              en, threshold 0.65) -> JsonlWriter (the filtered set)
  signatures  JsonlReader -> MinhashDedupSignature (its defaults: word 5-grams, 14 x 8, 64 bit)
  buckets     MinhashDedupBuckets
  cluster     MinhashDedupCluster
  filter      JsonlReader -> MinhashDedupFilter -> PIIFormatter (emails, IPs) -> JsonlWriter
              (kept) -> DocumentTokenizer (a byte-level BPE tokenizer.json of 32,000 tokens,
              trained with the ``tokenizers`` library on a seeded sample of the input: hub
              names do not resolve offline)

winnow: ``run_curation`` on the DirectRunner, multi_processing with ``--workers`` processes (a
list such as ``1,2`` times each count against the one datatrove run, and checks that every count
keeps the same documents):
normalize -> heuristics (Gopher quality rules only, or with the repetition rules, to match;
C4 rules off) -> language (en, 0.65) -> exact_dedup (off unless ``--exact-dedup``: datatrove's
pipeline has none) -> near_dedup (its defaults: threshold 0.8, 16 x 8, verified pairs) -> pii
-> shards (sentences, SentencePiece unigram 32,000, SOP pairs).

Tokenizers: the issue's stage list ends in tokenization, which datatrove does with an existing
tokenizer (DocumentTokenizer has no training step). So by default each side's tokenizer is
trained first, untimed, on a seeded sample of the same input (datatrove's BPE by
``tokenizers``; winnow's SentencePiece model by ``winnow tokenizer train``, given to the run as
``tokenizer.model``), and both timed runs only tokenize. ``--train-tokenizers`` times the
training inside both runs instead (winnow then trains on its kept documents, as ``winnow
curate`` does without ``tokenizer.model``; datatrove's BPE training is its own group).

Figures: documents/s and MB/s of text over wall time (winnow's: the median of
``--winnow-runs`` runs, half of them before datatrove's run and half after, since the shared
2-core machine has slow spells of minutes in which a 30 s run takes up to 40% longer), raw and
per core (divided by the worker processes each side uses: ``--workers`` for winnow, 1 for
datatrove; with ``--workers 1`` both sides run one worker process, the like-for-like figure,
while two winnow workers on two cores share them with the Beam runner's own process) and per
CPU second (user + system of every process of the run, by getrusage);
winnow's per-stage CPU seconds from report.json; datatrove's per-group wall seconds and per-step
seconds from its own stats. Kept sets: the Jaccard of the kept ids, and the ids kept by one side
only, with the other side's reason (winnow's stage:reason from removed/; datatrove's group:
filters or minhash), and the same among the documents both sides' filters passed, to compare
the dedup stages alone.

datatrove's GopherQualityFilter computes its alpha-word ratio over spaCy tokens, punctuation
tokens included, so most technical documents fail it at its default 0.8 and the kept sets barely
overlap; ``--datatrove-alpha-ratio 0`` turns that one rule off (a second run, for the overlap).
"""

from __future__ import annotations

import argparse
import datetime
import glob
import gzip
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
CORPORA = os.path.join(ROOT, "..", "shared", "corpora")
DEFAULT_INPUTS = [os.path.join(CORPORA, f"{name}.jsonl.gz")
                  for name in ("linux-doc", "python-doc", "perl-doc")]
LID_MODEL = os.path.join(ROOT, "filters", "models", "lid.176.ftz")
DT_PYTHON = "/work/dt-venv/bin/python"
VOCAB_SIZE = 32000
EOS = "<|endoftext|>"


# -- inputs --------------------------------------------------------------------------------------

def text_bytes(record: dict) -> int:
    return len((record.get("text") or "").encode("utf-8"))


def file_text_bytes(path: str) -> int:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return sum(text_bytes(json.loads(line)) for line in handle)


def copy_head(path: str, target: str, budget: int) -> None:
    """The first records of ``path`` up to ``budget`` bytes of text (at least one)."""
    used = 0
    with gzip.open(path, "rt", encoding="utf-8") as source, \
            gzip.open(target, "wt", encoding="utf-8") as sink:
        for line in source:
            size = text_bytes(json.loads(line))
            if used and used + size > budget:
                break
            sink.write(line if line.endswith("\n") else line + "\n")
            used += size


def prepare_inputs(paths: list[str], limit_mb: float | None, folder: str) -> list[str]:
    """Copies of the inputs in ``folder`` (cut to ``limit_mb`` MB of text, shared by the files
    in proportion to their size), so that both sides read exactly the same files."""
    os.makedirs(folder, exist_ok=True)
    sizes = {path: file_text_bytes(path) for path in paths} if limit_mb else {}
    total = sum(sizes.values())
    copies = []
    for path in paths:
        target = os.path.join(folder, os.path.basename(path))
        if limit_mb:
            copy_head(path, target, int(limit_mb * 1e6 * sizes[path] / total))
        else:
            shutil.copyfile(path, target)
        copies.append(target)
    return copies


def corpus_size(paths: list[str]) -> tuple[int, int]:
    """(documents, bytes of text)."""
    documents = size = 0
    for path in paths:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                documents += 1
                size += text_bytes(json.loads(line))
    return documents, size


def cpu_seconds() -> float:
    """User + system CPU of this process and of its waited-for descendants."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


# -- datatrove side (runs in the peers' virtual environment) -------------------------------------

def train_bpe(input_folder: str, path: str, vocab_size: int, seed: int = 0) -> None:
    """A byte-level BPE tokenizer.json trained on a seeded sample of the input (at most 20,000
    documents of at most 20,000 characters, as winnow samples its SentencePiece training set)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    texts = []
    for name in sorted(glob.glob(os.path.join(input_folder, "*.jsonl.gz"))):
        with gzip.open(name, "rt", encoding="utf-8") as handle:
            texts += [(json.loads(line).get("text") or "")[:20000] for line in handle]
    random.Random(seed).shuffle(texts)
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tokenizer.train_from_iterator(texts[:20000], trainer)
    tokenizer.save(path)


def datatrove_groups(spec: dict) -> list[tuple[str, list, int]]:
    """(group name, pipeline, tasks) in the order they run."""
    from datatrove.pipeline.dedup import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.filters import (
        GopherQualityFilter,
        GopherRepetitionFilter,
        LanguageFilter,
    )
    from datatrove.pipeline.formatters import PIIFormatter
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.tokens import DocumentTokenizer
    from datatrove.pipeline.writers import JsonlWriter

    work = spec["work"]
    folder = {name: os.path.join(work, name) for name in
              ("filtered", "signatures", "buckets", "clusters", "kept", "tokens", "tmp")}
    minhash = MinhashConfig()  # datatrove's defaults: 5-grams, 14 buckets x 8 hashes
    heuristics = [GopherQualityFilter(max_non_alpha_words_ratio=spec["alpha_ratio"])]
    if spec["repetition"]:
        heuristics = [GopherRepetitionFilter()] + heuristics
    filters = ([JsonlReader(spec["input"], glob_pattern="*.jsonl.gz")] + heuristics
               + [LanguageFilter(languages=["en"], language_threshold=0.65),
                  JsonlWriter(folder["filtered"])])
    return [
        ("filters", filters, 1),
        ("minhash signatures", [JsonlReader(folder["filtered"]),
                                MinhashDedupSignature(folder["signatures"], config=minhash)], 1),
        ("minhash buckets", [MinhashDedupBuckets(folder["signatures"], folder["buckets"],
                                                 config=minhash)], minhash.num_buckets),
        ("minhash cluster", [MinhashDedupCluster(folder["buckets"], folder["clusters"],
                                                 config=minhash)], 1),
        ("minhash filter, pii, tokens", [
            JsonlReader(folder["filtered"]), MinhashDedupFilter(folder["clusters"]),
            PIIFormatter(), JsonlWriter(folder["kept"]),
            DocumentTokenizer(folder["tokens"], tokenizer_name_or_path=spec["tokenizer"],
                              local_working_dir=folder["tmp"], eos_token=EOS)], 1),
    ]


def run_group(name: str, pipeline: list, tasks: int, logs: str) -> dict:
    from datatrove.executor import LocalPipelineExecutor

    executor = LocalPipelineExecutor(pipeline, tasks=tasks, workers=1, skip_completed=False,
                                     logging_dir=os.path.join(logs, name.replace(" ", "_")))
    started = time.monotonic()
    stats = executor.run()
    wall = time.monotonic() - started
    steps = [{"step": ascii_name(step.name), "seconds": step.time_stats.total,
              "dropped": {key.removeprefix("dropped_"): int(value.total)
                          for key, value in step.stats.items()
                          if key.startswith("dropped_")}}
             for step in (stats.stats if stats else [])]
    return {"group": name, "wall_seconds": wall, "steps": steps}


def datatrove_subprocess(spec: dict, work: str, dt_python: str, name: str) -> None:
    spec_path = os.path.join(work, f"spec-{name}.json")
    with open(spec_path, "w") as handle:
        json.dump(spec, handle)
    # Its downloads cache (the lid model copy) stays in the work folder; nothing goes online.
    env = dict(os.environ, HF_HOME=os.path.join(work, "hf-home"), HF_HUB_OFFLINE="1",
               HF_DATASETS_OFFLINE="1")
    log_path = os.path.join(work, f"datatrove-{name}.log")
    with open(log_path, "w") as log:
        code = subprocess.call([dt_python, os.path.abspath(__file__), "--datatrove-side",
                                spec_path], stdout=log, stderr=subprocess.STDOUT, env=env)
    if code:
        with open(log_path) as log:
            sys.exit(f"datatrove side failed (exit {code}); log {log_path}:\n"
                     + "".join(log.readlines()[-30:]))


def ascii_name(name: str) -> str:
    """A step name without its emoji: "READER: Jsonl"."""
    return " ".join("".join(c for c in name if c.isascii()).split()).strip(" -")


def read_ids(folder: str) -> list[str]:
    ids = []
    for name in sorted(glob.glob(os.path.join(folder, "*.jsonl.gz"))):
        with gzip.open(name, "rt", encoding="utf-8") as handle:
            ids += [str(json.loads(line)["id"]) for line in handle]
    return ids


def datatrove_side(spec_path: str) -> None:
    """Run every group, write kept and filtered ids and the timings next to ``spec_path``."""
    with open(spec_path) as handle:
        spec = json.load(handle)
    from datatrove.utils import lid

    lid.FT176LID.MODEL_URL = "file://" + spec["lid_model"]  # no download
    if spec["phase"] == "tokenizer":
        train_bpe(spec["input"], spec["tokenizer"], spec["vocab_size"])
        return
    groups = []
    if spec["train_tokenizer"]:
        started = time.monotonic()
        train_bpe(spec["input"], spec["tokenizer"], spec["vocab_size"])
        groups.append({"group": "tokenizer training (tokenizers BPE)",
                       "wall_seconds": time.monotonic() - started, "steps": []})
    for name, pipeline, tasks in datatrove_groups(spec):
        groups.append(run_group(name, pipeline, tasks, os.path.join(spec["work"], "logs")))
    work = spec["work"]
    result = {"groups": groups, "versions": peer_versions(),
              "kept_ids": read_ids(os.path.join(work, "kept")),
              "filtered_ids": read_ids(os.path.join(work, "filtered"))}
    with open(os.path.join(work, "result.json"), "w") as handle:
        json.dump(result, handle)


def peer_versions() -> dict:
    from importlib.metadata import version

    return {"python": platform.python_version(), "datatrove": version("datatrove"),
            "tokenizers": version("tokenizers"), "spacy": version("spacy"),
            "fasttext": version("fasttext-numpy2-wheel")}


def run_datatrove(inputs_folder: str, work: str, dt_python: str, repetition: bool,
                  alpha_ratio: float, train_tokenizer: bool) -> dict:
    """Start the datatrove side and return its result with wall and CPU seconds (of the timed
    run only: without ``train_tokenizer`` its BPE is trained first, by an untimed run)."""
    shutil.rmtree(work, ignore_errors=True)  # datatrove skips tasks its logs call completed
    os.makedirs(work)
    spec = {"input": inputs_folder, "work": work, "lid_model": os.path.abspath(LID_MODEL),
            "tokenizer": os.path.join(work, "tokenizer.json"), "vocab_size": VOCAB_SIZE,
            "repetition": repetition, "alpha_ratio": alpha_ratio,
            "train_tokenizer": train_tokenizer}
    if not train_tokenizer:
        datatrove_subprocess(dict(spec, phase="tokenizer"), work, dt_python, "tokenizer")
    cpu_before, started = cpu_seconds(), time.monotonic()
    datatrove_subprocess(dict(spec, phase="run"), work, dt_python, "run")
    wall, cpu = time.monotonic() - started, cpu_seconds() - cpu_before
    with open(os.path.join(work, "result.json")) as handle:
        result = json.load(handle)
    return dict(result, wall_seconds=wall, cpu_seconds=cpu)


# -- winnow side ---------------------------------------------------------------------------------

def winnow_config(repetition: bool, exact_dedup: bool, tokenizer_model: str = ""):
    from winnow.pipeline.config import config_from_dict

    return config_from_dict({
        "heuristics": {"gopher_quality": True, "gopher_repetition": repetition, "c4": False},
        "language": {"languages": ["en"], "threshold": 0.65},
        "exact_dedup": {"enabled": exact_dedup},
        "tokenizer": {"model": tokenizer_model},
    })


def train_winnow_tokenizer(inputs: list[str], work: str) -> str:
    """``winnow tokenizer train`` on the input (its default seeded sample); the model's path."""
    from winnow.cli import main as winnow

    os.makedirs(work, exist_ok=True)
    prefix = os.path.join(work, "tokenizer")
    if winnow(["tokenizer", "train", *inputs, "--output", prefix]):
        sys.exit("winnow tokenizer train failed")
    return prefix + ".model"


def kept_and_removed(run_dir: str) -> tuple[list[str], dict[str, str]]:
    """(kept ids, removed id -> stage:reason) of a run folder."""
    import pyarrow.parquet as pq

    def table(name: str, columns: list[str]) -> list[dict]:
        folder = os.path.join(run_dir, name)
        return pq.read_table(folder, columns=columns).to_pylist() if os.listdir(folder) else []

    kept = [row["id"] for row in table("kept", ["id"])]
    removed = {row["id"]: f"{row['stage']}:{row['reason']}"
               for row in table("removed", ["id", "stage", "reason"])}
    return kept, removed


def run_winnow(inputs: list[str], work: str, workers: int, config) -> dict:
    from winnow.pipeline.curate import run_curation

    beam_args = ["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"]
    run_dir = os.path.join(work, "run")
    cpu_before, started = cpu_seconds(), time.monotonic()
    report = run_curation(inputs, run_dir, config, beam_args, overwrite=True)
    wall, cpu = time.monotonic() - started, cpu_seconds() - cpu_before
    kept, removed = kept_and_removed(run_dir)
    stages = [{"stage": s["name"], "documents_in": s["documents_in"], "bytes_in": s["bytes_in"],
               "cpu_seconds": s["seconds"], "removed": s.get("removed", {})}
              for s in report["stages"] if s.get("enabled", True)]
    return {"wall_seconds": wall, "cpu_seconds": cpu, "stages": stages, "kept_ids": kept,
            "removed": removed, "documents": report["documents"]["input"]}


def winnow_runs(inputs: list[str], work: str, worker_counts: list[int], config,
                runs: int) -> dict[int, list[dict]]:
    """``runs`` winnow runs for each worker count, the counts alternating: {count: [run]}."""
    timed: dict[int, list[dict]] = {workers: [] for workers in worker_counts}
    for _ in range(runs):
        for workers in worker_counts:
            timed[workers].append(run_winnow(inputs, os.path.join(work, "winnow"), workers,
                                             config))
    return timed


def median_run(timed: list[dict]) -> dict:
    """The run with the median wall time, with every run's wall time added."""
    median = sorted(timed, key=lambda run: run["wall_seconds"])[len(timed) // 2]
    median["all_wall_seconds"] = [round(run["wall_seconds"], 2) for run in timed]
    return median


def side_name(workers: int) -> str:
    return f"winnow/{workers}"


def winnow_versions() -> dict:
    from importlib.metadata import version

    return {"python": platform.python_version(), "winnow": version("winnow"),
            "apache-beam": version("apache-beam"), "fasttext": version("fasttext-community"),
            "sentencepiece": version("sentencepiece")}


# -- comparison ----------------------------------------------------------------------------------

def throughput(documents: int, size: int, wall: float, cpu: float, cores: int) -> dict:
    return {"wall_seconds": wall, "cpu_seconds": cpu, "cores": cores,
            "docs_per_s": documents / wall, "mb_per_s": size / 1e6 / wall,
            "docs_per_s_per_core": documents / wall / cores,
            "mb_per_s_per_core": size / 1e6 / wall / cores,
            "mb_per_cpu_s": size / 1e6 / cpu if cpu else None}


def overlap(ours: dict, theirs: dict) -> dict:
    kept_ours, kept_theirs = set(ours["kept_ids"]), set(theirs["kept_ids"])
    filtered = set(theirs["filtered_ids"])
    only_ours, only_theirs = kept_ours - kept_theirs, kept_theirs - kept_ours
    union = kept_ours | kept_theirs
    why_theirs = Counter("filters (gopher/language)" if i not in filtered else "minhash"
                         for i in only_ours)
    why_ours = Counter(ours["removed"].get(i, "not in removed/") for i in only_theirs)
    # The documents each side's filters passed: datatrove's filtered set; winnow's kept ones and
    # those its dedup stages removed. Dedup removals are compared among those both passed.
    ours_filtered = kept_ours | {i for i, why in ours["removed"].items()
                                 if why.startswith(("exact_dedup:", "near_dedup:"))}
    common = ours_filtered & filtered
    return {"filtered_ours": len(ours_filtered), "filtered_theirs": len(filtered),
            "filtered_both": len(common),
            "filtered_jaccard": len(common) / len(ours_filtered | filtered)
            if ours_filtered | filtered else 1.0,
            "dedup_removed_ours": len(common - kept_ours),
            "dedup_removed_theirs": len(common - kept_theirs),
            "dedup_removed_both": len(common - kept_ours - kept_theirs),
"kept_ours": len(kept_ours), "kept_theirs": len(kept_theirs),
            "both": len(kept_ours & kept_theirs), "only_ours": len(only_ours),
            "only_theirs": len(only_theirs),
            "jaccard": len(kept_ours & kept_theirs) / len(union) if union else 1.0,
            "only_ours_removed_by_datatrove": dict(why_theirs.most_common()),
            "only_theirs_removed_by_winnow": dict(why_ours.most_common())}


# -- report --------------------------------------------------------------------------------------

def print_header(args, documents: int, size: int, versions: dict) -> None:
    print(f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"command: {' '.join(sys.argv)}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()} "
          f"{platform.release()}")
    for side, pins in versions.items():
        print(f"{side}: " + ", ".join(f"{k} {v}" for k, v in pins.items()))
    print(f"corpus: {documents:,} documents, {size / 1e6:.1f} MB of text "
          f"({', '.join(os.path.basename(p) for p in args.inputs)}"
          + (f", cut to {args.limit_mb} MB" if args.limit_mb else "") + ")")
    print(f"stages: heuristics = {args.heuristics}; exact_dedup "
          f"{'on (winnow only; datatrove has none here)' if args.exact_dedup else 'off'}; "
          f"winnow workers {','.join(map(str, args.workers))} (winnow/N: N workers), "
          f"datatrove 1 worker; datatrove Gopher alpha-word "
          f"ratio {args.datatrove_alpha_ratio}" + (" (its default)"
                                                   if args.datatrove_alpha_ratio == 0.8 else "")
          + ("; tokenizer training timed on both sides" if args.train_tokenizers
             else "; tokenizers trained before the timed runs, which only tokenize"))


def print_throughput(rows: dict) -> None:
    print()
    print(f"{'side':<10} {'wall s':>8} {'cpu s':>8} {'cores':>5} {'docs/s':>8} {'MB/s':>7} "
          f"{'docs/s/core':>11} {'MB/s/core':>9} {'MB/cpu-s':>8}")
    for side, row in rows.items():
        print(f"{side:<10} {row['wall_seconds']:>8.1f} {row['cpu_seconds']:>8.1f} "
              f"{row['cores']:>5} {row['docs_per_s']:>8.1f} {row['mb_per_s']:>7.3f} "
              f"{row['docs_per_s_per_core']:>11.1f} {row['mb_per_s_per_core']:>9.3f} "
              f"{row['mb_per_cpu_s']:>8.3f}")
    theirs = rows["datatrove"]
    for side, ours in rows.items():
        if side != "datatrove":
            print(f"ratio {side}/datatrove: {ours['mb_per_s'] / theirs['mb_per_s']:.2f}x raw, "
                  f"{ours['mb_per_s_per_core'] / theirs['mb_per_s_per_core']:.2f}x per core, "
                  f"{ours['mb_per_cpu_s'] / theirs['mb_per_cpu_s']:.2f}x per CPU second")


def print_stages(ours: dict, theirs: dict) -> None:
    print()
    print("winnow per stage (CPU seconds summed over workers, report.json):")
    for stage in ours["stages"]:
        removed = ", ".join(f"{k} {v}" for k, v in stage["removed"].items())
        print(f"  {stage['stage']:<12} {stage['documents_in']:>8,} docs in "
              f"{stage['bytes_in'] / 1e6:>8.1f} MB in {stage['cpu_seconds']:>8.2f} s"
              + (f"   removed: {removed}" if removed else ""))
    print("datatrove per group (wall seconds, 1 worker) and per step (its own stats):")
    for group in theirs["groups"]:
        print(f"  {group['group']:<38} {group['wall_seconds']:>8.2f} s")
        for step in group["steps"]:
            dropped = ", ".join(f"{k} {v}" for k, v in step["dropped"].items())
            print(f"      {step['step']:<34} {step['seconds']:>8.2f} s"
                  + (f"   dropped: {dropped}" if dropped else ""))


def print_overlap(result: dict) -> None:
    print()
    print(f"kept: winnow {result['kept_ours']:,}, datatrove {result['kept_theirs']:,}; both "
          f"{result['both']:,}, only winnow {result['only_ours']:,}, only datatrove "
          f"{result['only_theirs']:,}; Jaccard of kept ids {result['jaccard']:.4f}")
    print(f"  after the filters (heuristics, language): winnow {result['filtered_ours']:,}, "
          f"datatrove {result['filtered_theirs']:,}, both {result['filtered_both']:,} "
          f"(Jaccard {result['filtered_jaccard']:.4f}); dedup removals among those both "
          f"passed: winnow {result['dedup_removed_ours']:,}, datatrove "
          f"{result['dedup_removed_theirs']:,}, both {result['dedup_removed_both']:,}")
    print("  kept by winnow only, dropped by datatrove at: "
          + (", ".join(f"{k} {v}" for k, v in result["only_ours_removed_by_datatrove"].items())
             or "-"))
    print("  kept by datatrove only, removed by winnow as: "
          + (", ".join(f"{k} {v}" for k, v in result["only_theirs_removed_by_winnow"].items())
             or "-"))


# -- main ----------------------------------------------------------------------------------------

def worker_counts(text: str) -> list[int]:
    counts = [int(part) for part in text.split(",")]
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"worker counts must be >= 1, got {text!r}")
    return counts


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="*", default=DEFAULT_INPUTS)
    parser.add_argument("--limit-mb", type=float, default=None,
                        help="cut the inputs to this many MB of text (trials)")
    parser.add_argument("--workers", type=worker_counts, default=[2],
                        help="winnow's DirectRunner multi_processing workers, or a list such as "
                             "1,2 to time each count")
    parser.add_argument("--heuristics", choices=("gopher", "gopher+repetition"),
                        default="gopher", help="rule sets run on both sides")
    parser.add_argument("--exact-dedup", action="store_true",
                        help="turn winnow's exact_dedup on (datatrove's pipeline has none)")
    parser.add_argument("--datatrove-alpha-ratio", type=float, default=0.8,
                        help="datatrove's GopherQualityFilter max_non_alpha_words_ratio (its "
                             "default 0.8; 0 turns the rule off): it counts spaCy's punctuation "
                             "tokens as words, so most technical text fails it")
    parser.add_argument("--winnow-runs", type=int, default=3,
                        help="run winnow this many times and report the median run (its wall "
                             "time varies more than datatrove's much longer one)")
    parser.add_argument("--train-tokenizers", action="store_true",
                        help="time tokenizer training inside both runs (default: each side's "
                             "tokenizer is trained first, untimed, and the runs only tokenize)")
    parser.add_argument("--dt-python", default=DT_PYTHON,
                        help="python of the virtual environment with datatrove")
    parser.add_argument("--keep-dir", default=None, help="keep inputs and both runs here")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    parser.add_argument("--datatrove-side", default=None, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.datatrove_side:
        datatrove_side(args.datatrove_side)
        return
    import logging

    logging.getLogger("apache_beam").setLevel(logging.ERROR)
    work = args.keep_dir or tempfile.mkdtemp(prefix="winnow-vs-datatrove-")
    try:
        compare(args, work)
    finally:
        if not args.keep_dir:
            shutil.rmtree(work, ignore_errors=True)


def compare(args, work: str) -> None:
    inputs = prepare_inputs(args.inputs, args.limit_mb, os.path.join(work, "input"))
    documents, size = corpus_size(inputs)
    repetition = args.heuristics == "gopher+repetition"
    model = ("" if args.train_tokenizers
             else train_winnow_tokenizer(inputs, os.path.join(work, "winnow-tokenizer")))
    config = winnow_config(repetition, args.exact_dedup, model)
    # The shared machine has slow spells of minutes: half of winnow's runs go before
    # datatrove's long one and half after, so that one spell cannot land on one side only.
    before = winnow_runs(inputs, work, args.workers, config, (args.winnow_runs + 1) // 2)
    theirs = run_datatrove(os.path.join(work, "input"), os.path.join(work, "datatrove"),
                           args.dt_python, repetition, args.datatrove_alpha_ratio,
                           args.train_tokenizers)
    after = winnow_runs(inputs, work, args.workers, config, args.winnow_runs // 2)
    medians = {workers: median_run(before[workers] + after[workers])
               for workers in args.workers}
    ours = medians[args.workers[-1]]
    versions = {"winnow side": winnow_versions(), "datatrove side": theirs["versions"]}
    print_header(args, documents, size, versions)
    rows = {side_name(workers): throughput(documents, size, run["wall_seconds"],
                                           run["cpu_seconds"], workers)
            for workers, run in medians.items()}
    rows["datatrove"] = throughput(documents, size, theirs["wall_seconds"],
                                   theirs["cpu_seconds"], 1)
    print_throughput(rows)
    for workers, run in medians.items():
        if len(run["all_wall_seconds"]) > 1:
            print(f"{side_name(workers)}: the run with the median wall time of "
                  f"{len(run['all_wall_seconds'])}: "
                  + ", ".join(f"{wall:.1f}" for wall in run["all_wall_seconds"]) + " s")
    if len(medians) > 1:
        same = all(sorted(run["kept_ids"]) == sorted(ours["kept_ids"]) for run in medians.values())
        print(f"winnow kept the same documents with every worker count: {'yes' if same else 'NO'}")
    print_stages(ours, theirs)
    kept = overlap(ours, theirs)
    print_overlap(kept)
    if args.json:
        write_json(args, documents, size, versions, rows, medians, theirs, kept)


def write_json(args, documents, size, versions, rows, medians, theirs, kept) -> None:
    ours = medians[args.workers[-1]]
    figures = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
               "command": sys.argv, "cores": os.cpu_count(), "versions": versions,
               "documents": documents, "megabytes": size / 1e6, "limit_mb": args.limit_mb,
               "heuristics": args.heuristics, "exact_dedup": args.exact_dedup,
               "datatrove_alpha_ratio": args.datatrove_alpha_ratio,
               "train_tokenizers": args.train_tokenizers,
               "winnow_wall_seconds_all_runs": {side_name(workers): run["all_wall_seconds"]
                                                for workers, run in medians.items()},
               "throughput": rows, "winnow_stages": ours["stages"],
               "datatrove_groups": theirs["groups"], "kept": kept}
    with open(args.json, "w") as handle:
        json.dump(figures, handle, indent=2)


if __name__ == "__main__":
    main()
