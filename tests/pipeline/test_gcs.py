"""Every curation-side command on gs:// paths, against the local Cloud Storage emulator
(``tests.gcs_emulator``): the same bytes and the same printed figures as on a local folder.

The runs curate the sample's six-document extra.jsonl (in-process runner): small, yet every
output folder, the tokenizer and one shard are written.
"""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tests.pipeline.report_runs import SAMPLE
from tests.pipeline.test_curate import output_bytes
from winnow.cli import main

INPUT = SAMPLE / "extra.jsonl"
SHARD_FILES = ("shards/shard-00000.tokens.bin", "shards/shard-00000.index.npy",
               "shards/tokenizer.model", "tokenizer/tokenizer.model")


def winnow(capsys, *args: str) -> SimpleNamespace:
    """``winnow ARGS`` in this process: exit code, stdout, stderr."""
    code = main(list(args))
    captured = capsys.readouterr()
    return SimpleNamespace(code=code, out=captured.out, err=captured.err)


@pytest.fixture(scope="module")
def runs(gcs_server, tmp_path_factory):
    """extra.jsonl curated three ways: gs:// -> gs://, gs:// -> local, local -> local; and the
    gs:// run's folder copied back (``downloaded``)."""
    base = tmp_path_factory.mktemp("gcs-runs")
    gs_input = gcs_server.upload(INPUT, "in/extra.jsonl")
    paths = SimpleNamespace(gs_input=gs_input, gs_run=gcs_server.url("runs", "a"),
                            local_from_gs=base / "from-gs", local=base / "local")
    with gcs_server.environment():
        for source, output in ((gs_input, paths.gs_run), (gs_input, paths.local_from_gs),
                               (str(INPUT), paths.local)):
            assert main(["curate", source, "--output", str(output)]) == 0
    paths.downloaded = gcs_server.download("runs/a", base / "downloaded")
    return paths


@pytest.fixture(autouse=True)
def _gcs_environment(gcs):
    """Every test here talks to the emulator."""


def test_curate_writes_to_gs_the_bytes_it_writes_locally(runs):
    written = output_bytes(runs.downloaded)
    assert written == output_bytes(runs.local_from_gs)
    assert set(SHARD_FILES) <= set(written)
    assert {"kept/part-00000-of-00008.parquet", "removed/part-00000-of-00008.parquet",
            "quarantined/part-00000-of-00008.parquet", "shards/manifest.json"} <= set(written)
    assert (runs.downloaded / "report.json").is_file()


def test_curate_reads_gs_as_it_reads_a_local_file(runs):
    """Only the input's name differs (it is each document's input_file)."""
    from_gs, local = output_bytes(runs.downloaded), output_bytes(runs.local)
    for name in SHARD_FILES:
        assert from_gs[name] == local[name], name
    documents = "shards/shard-00000.documents.jsonl"
    assert from_gs[documents] == local[documents].replace(str(INPUT).encode(),
                                                          runs.gs_input.encode())


def test_reading_progress_knows_the_size_of_gs_inputs(runs, gcs_server):
    """The share read of a run on gs:// inputs: the workers count each file read by its size
    (``stored_size``), out of the total the launcher lists (``stored_total``)."""
    from winnow.pipeline.filesystem import stored_size
    from winnow.pipeline.progress import local_input_sizes, stored_total

    size = INPUT.stat().st_size
    assert stored_size(runs.gs_input) == size
    assert stored_size(gcs_server.url("in", "gone.jsonl")) == 0
    paths = [runs.gs_input, str(INPUT), gcs_server.url("in", "gone.jsonl")]
    assert stored_total(paths, local_input_sizes(paths)) == 2 * size


def printed_alike(gs_text: str, gs_path: str, local_text: str, local_path: Path) -> bool:
    return gs_text.replace(gs_path, "RUN") == local_text.replace(str(local_path), "RUN")


@pytest.mark.parametrize("flags", [[], ["--json"], ["--reason", "exact_duplicate"]],
                         ids=["tables", "json", "reason"])
def test_report_on_gs_prints_what_it_prints_locally(runs, flags, capsys):
    on_gs = winnow(capsys, "report", runs.gs_run, *flags)
    local = winnow(capsys, "report", str(runs.downloaded), *flags)
    assert (on_gs.code, local.code, on_gs.err) == (0, 0, "")
    assert "exact_duplicate" in on_gs.out
    assert printed_alike(on_gs.out, runs.gs_run, local.out, runs.downloaded)


def test_report_compares_a_gs_run_and_writes_html_to_gs(runs, gcs, tmp_path, capsys):
    compared = winnow(capsys, "report", runs.gs_run, "--compare", str(runs.local))
    local = winnow(capsys, "report", str(runs.downloaded), "--compare", str(runs.local))
    assert (compared.code, compared.err) == (0, "") and "config differences" in compared.out
    assert printed_alike(compared.out, runs.gs_run, local.out, runs.downloaded)

    assert winnow(capsys, "report", runs.gs_run, "--html", gcs.url("pages", "r.html")).code == 0
    assert winnow(capsys, "report", str(runs.downloaded), "--html",
                  str(tmp_path / "local.html")).code == 0
    gcs.download("pages", tmp_path / "pages")
    page = (tmp_path / "pages" / "r.html").read_text()
    assert page.replace(runs.gs_run, "RUN") == (tmp_path / "local.html").read_text().replace(
        str(runs.downloaded), "RUN")


@pytest.mark.parametrize("action", [["verify"], ["stats"], ["stats", "--json"],
                                    ["show", "-n", "2", "--provenance"]],
                         ids=["verify", "stats", "stats-json", "show"])
def test_shards_commands_read_gs_as_they_read_a_local_folder(runs, action, capsys):
    on_gs = winnow(capsys, "shards", *action, runs.gs_run)
    local = winnow(capsys, "shards", *action, str(runs.downloaded))
    assert (on_gs.code, on_gs.err) == (0, "")
    assert printed_alike(on_gs.out, runs.gs_run, local.out, runs.downloaded)
    if action == ["verify"]:
        assert on_gs.out == f"{runs.gs_run}/shards: ok\n"


def test_a_corrupt_gs_shard_is_named(runs, gcs, tmp_path, capsys):
    corrupt = tmp_path / "shards"
    corrupt.mkdir()
    for path in (runs.downloaded / "shards").iterdir():
        (corrupt / path.name).write_bytes(path.read_bytes())
    tokens = np.fromfile(corrupt / "shard-00000.tokens.bin", dtype=np.uint16)
    tokens[-1] = 65535  # not in the vocabulary (in the last example: show -n 1 decodes none)
    tokens.tofile(corrupt / "shard-00000.tokens.bin")
    (corrupt / "shard-00000.documents.jsonl").unlink()
    url = gcs.upload(corrupt, "corrupt/shards")

    verified = winnow(capsys, "shards", "verify", url)
    assert verified.code == 1
    assert "shard-00000.tokens.bin: sha256" in verified.err
    assert "shard-00000.tokens.bin: token id 65535 >= vocab_size" in verified.err
    assert "shard-00000.documents.jsonl: missing" in verified.err

    shown = winnow(capsys, "shards", "show", "-n", "1", "--provenance", url)
    assert shown.code == 2
    assert shown.err.count("\n") == 1 and "shard-00000.documents.jsonl" in shown.err


def test_a_missing_gs_folder_is_one_line(gcs, capsys):
    for action in ("verify", "stats", "show"):
        result = winnow(capsys, "shards", action, gcs.url("nothing", "here"))
        assert result.code in (1, 2)
        assert result.err.count("\n") == 1 and "manifest.json" in result.err, result.err


def test_tokenizer_train_reads_and_writes_gs(runs, gcs, tmp_path, capsys):
    on_gs = winnow(capsys, "tokenizer", "train", runs.gs_input, "--output",
                   gcs.url("tokenizers", "spm"))
    local = winnow(capsys, "tokenizer", "train", str(INPUT), "--output", str(tmp_path / "spm"))
    assert (on_gs.code, local.code, on_gs.err) == (0, 0, "")
    assert gcs.keys("tokenizers") == ["spm.model", "spm.vocab"]
    gcs.download("tokenizers", tmp_path / "from-gs")
    for suffix in ("model", "vocab"):
        assert ((tmp_path / "from-gs" / f"spm.{suffix}").read_bytes()
                == (tmp_path / f"spm.{suffix}").read_bytes())


def test_the_language_stage_loads_its_model_from_gs(gcs):
    from winnow.filters.language import BUNDLED_LID_MODEL, LanguageConfig
    from winnow.pipeline.stages import LanguageStage

    stage = LanguageStage(LanguageConfig(model=gcs.upload(Path(BUNDLED_LID_MODEL),
                                                          "models/lid.176.ftz")))
    stage.setup()
    french = "Ceci est une phrase écrite en français, sans aucun doute."
    assert stage.identifier.predict(french)[0] == "fr"


def test_curate_reads_its_config_from_gs(gcs, tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("heuristics:\n  min_words: 77\n")
    url = gcs.upload(tmp_path / "c.yaml", "configs/c.yaml")
    printed = winnow(capsys, "curate", "--config", url, "--print-config")
    assert printed.code == 0 and "min_words: 77" in printed.out


def test_quality_train_reads_its_examples_from_gs(gcs, tmp_path, capsys):
    from tests.pipeline.test_quality_stage import SMALL, fixture_files

    hq, lq = fixture_files(tmp_path)
    urls = [gcs.upload(Path(path), f"quality/{Path(path).name}") for path in (hq, lq)]
    output = tmp_path / "q.bin"
    trained = winnow(capsys, "quality", "train", "--positive", urls[0], "--negative", urls[1],
                     "--output", str(output), *SMALL)
    local = winnow(capsys, "quality", "train", "--positive", hq, "--negative", lq,
                   "--output", str(tmp_path / "local.bin"), *SMALL)
    assert (trained.code, local.code) == (0, 0)
    assert output.read_bytes() == (tmp_path / "local.bin").read_bytes()
