"""The shard-aware train order (``shuffle: shards``, trainer.data.ShardWindowOrder) and the
bounded shard cache it allows: each epoch a permutation of the training examples (never a held-
out one), a function of (seed, epoch, position) only, whose windows read only their own shards;
a run whose cache limit is below the set but above two windows trains, stops and resumes
exactly; its held-out examples lie in a few reserved shards, the only ones its first evaluation
fetches. The default ``global`` order is the base commit's, position for position."""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sentencepiece")

from tests.trainer.helpers import (  # noqa: E402
    read_metrics,
    single_thread,  # noqa: F401 (autouse fixture)
    small_shards,
    text_examples,
    tiny_config,
    write_config,
    write_shards,
)
from winnow.cli import main  # noqa: E402
from winnow.schemas.shard_cache import CacheOptions, expected_sizes, open_shards  # noqa: E402
from winnow.schemas.shard_format import shard_files  # noqa: E402
from winnow.schemas.shard_reader import ShardReader  # noqa: E402
from winnow.trainer.checkpoints import (  # noqa: E402
    latest_checkpoint,
    load_checkpoint,
    write_checkpoint,
)
from winnow.trainer.config import ConfigError, config_from_dict  # noqa: E402
from winnow.trainer.data import PretrainingData, ShardWindowOrder, step_positions  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def shards(tmp_path_factory, tokenizer):
    """80 examples in ten shards of 8."""
    directory = tmp_path_factory.mktemp("windows")
    write_shards(directory, text_examples(tokenizer, 80, 20), tokenizer, max_seq_len=20,
                 examples_per_shard=8)
    return str(directory)


@pytest.fixture(scope="module")
def wide_shards(tmp_path_factory, tokenizer):
    """400 examples in ten shards of 40: 8 held out need two reserved shards (80 examples)."""
    directory = tmp_path_factory.mktemp("wide")
    write_shards(directory, text_examples(tokenizer, 400, 20, seed=1), tokenizer,
                 max_seq_len=20, examples_per_shard=40)
    return str(directory)


def windowed(shards, seed=7, window_shards=3, split="train", eval_examples=6, reader=None):
    return PretrainingData(reader or shards, seed, split, eval_examples, shuffle="shards",
                           window_shards=window_shards)


def shard_of(reader: ShardReader, indices) -> np.ndarray:
    ends = np.cumsum([shard.examples for shard in reader.manifest.shards])
    return np.searchsorted(ends, indices, side="right")


def test_the_global_order_is_the_base_commits(tmp_path, tokenizer):
    shards = small_shards(tmp_path, tokenizer, count=40)
    train = PretrainingData(shards, seed=7, split="train", eval_examples=4)
    # computed with the code before shuffle: shards existed (commit cdc47dc)
    assert train.example_indices(np.arange(0, 80, 3)).tolist() == [
        38, 13, 28, 26, 19, 21, 22, 30, 0, 25, 27, 8, 13, 7, 39, 1, 38, 18, 14, 0, 25, 23, 2,
        30, 16, 14, 1]
    held_out = PretrainingData(shards, seed=7, split="eval", eval_examples=4)
    assert held_out.example_indices(np.arange(8)).tolist() == [35, 24, 17, 10] * 2


def test_each_epoch_is_a_permutation_of_the_training_examples_and_never_a_held_out_one(shards):
    data = windowed(shards)
    held = set(windowed(shards, split="eval").example_indices(np.arange(6)).tolist())
    assert len(held) == 6 and len(data) == 74
    train = sorted(set(range(80)) - held)
    epochs = [data.example_indices(epoch * 74 + np.arange(74)).tolist() for epoch in range(3)]
    for order in epochs:
        assert sorted(order) == train
    assert epochs[0] != epochs[1] != epochs[2]
    assert epochs[0] != PretrainingData(shards, 7, "train", 6).example_indices(
        np.arange(74)).tolist()


def test_under_shards_the_held_out_examples_lie_in_the_fewest_shards_holding_ten_times_more(
        wide_shards):
    held_out = windowed(wide_shards, split="eval", eval_examples=8)
    indices = held_out.example_indices(np.arange(16)).tolist()
    assert indices[:8] == indices[8:] and len(set(indices[:8])) == 8 == len(held_out)
    reader = held_out.reader
    in_shards = set(shard_of(reader, indices).tolist())
    assert len(in_shards) == 2  # 2 x 40 examples >= 10 x 8 (the global split's lie in 5)
    assert in_shards == set(held_out.reserved_shards.tolist())
    for seed in (8, 123):  # other seeds, other windows: the same held-out examples
        assert windowed(wide_shards, seed, split="eval", eval_examples=8).example_indices(
            np.arange(8)).tolist() == indices[:8]
        train = windowed(wide_shards, seed, eval_examples=8)
        assert len(train) == 392
        trained = train.example_indices(np.arange(392)).tolist()
        assert sorted(trained + indices[:8]) == list(range(400))  # disjoint, the whole corpus


def test_the_reserved_shards_are_the_shortest_prefix_of_a_fixed_shard_order(shards):
    from winnow.trainer.data import reserved_eval_split

    counts = np.array([5, 0, 3, 7, 2, 9, 4, 6])  # corpus 36
    ends = np.cumsum(counts)
    reserved, held_out = reserved_eval_split(counts, 2)
    assert counts[reserved].sum() >= 20 > counts[reserved[:-1]].sum()
    assert len(set(held_out.tolist())) == 2
    assert set(np.searchsorted(ends, held_out, side="right").tolist()) <= set(reserved.tolist())
    longer, _ = reserved_eval_split(counts, 3)  # 30 examples: the same order, further
    assert longer[:len(reserved)].tolist() == reserved.tolist()
    # a tenth of the corpus held out needs every shard: then the split is the global one
    assert windowed(shards, split="eval", eval_examples=8).example_indices(
        np.arange(8)).tolist() == PretrainingData(shards, 7, "eval", 8).example_indices(
        np.arange(8)).tolist()


def test_the_first_evaluation_through_a_bounded_cache_fetches_only_the_reserved_shards(
        wide_shards, tmp_path):
    from tests.schemas.test_shard_cache import CountingCopy

    manifest = ShardReader(wide_shards).manifest
    sizes = expected_sizes(manifest)
    one_shard = max(sum(sizes[name] for name in shard_files(shard.name)[:2])
                    for shard in manifest.shards)  # the cache holds the shard eval reads
    download = CountingCopy(tmp_path / "log")
    reader = open_shards(wide_shards, CacheOptions(root=str(tmp_path / "cache"),
                                                   limit_bytes=one_shard), download)
    held_out = PretrainingData(reader, 7, "eval", 8, shuffle="shards", window_shards=2)
    for step in range(3):  # every evaluation reads the same 8 examples, kept after the first
        held_out.batch(step_positions(step, 8))
    fetched = [name for name in download.fetched() if name.startswith("shard-")]
    assert len(fetched) == 4  # tokens.bin and index.npy of 2 shards of 10, each once
    assert fetched == sorted(name for shard in held_out.reserved_shards.tolist() for name in
                             shard_files(manifest.shards[shard].name)[:2])


def test_an_empty_shard_or_one_all_held_out_makes_no_window_position():
    counts = [5, 0, 3, 7, 2]  # corpus 17; shard 4 (examples 15, 16) wholly held out
    order = ShardWindowOrder(counts, np.array([16, 1, 15, 9]), seed=3, window_shards=2)
    assert order.size == 13
    for epoch in range(4):
        assert sorted(order(epoch, np.arange(13)).tolist()) == [
            0, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14]


def test_positions_of_a_window_read_only_its_shards(shards):
    data = windowed(shards)
    reader, windows = data.reader, data.windows
    for epoch in range(2):
        order = windows.shard_order(epoch)
        assert sorted(order.tolist()) == list(range(10))
        seen = []
        for window in range(windows.windows()):  # 3 + 3 + 3 + 1 shards
            start, end = windows.window_span(epoch, window)
            read = set(shard_of(reader, data.example_indices(epoch * 74 + np.arange(
                start, end))).tolist())
            assert read == set(windows.window_shards_of(epoch, window).tolist())
            seen.append(len(read))
        assert seen == [3, 3, 3, 1]
    assert windows.shard_order(0).tolist() != windows.shard_order(1).tolist()


def test_the_order_is_the_same_in_another_process_and_after_pickling(shards):
    positions = np.arange(0, 300, 7)
    here = windowed(shards).example_indices(positions).tolist()
    assert pickle.loads(pickle.dumps(windowed(shards))).example_indices(positions).tolist() == here
    script = ("import sys, numpy as np; from winnow.trainer.data import PretrainingData; "
              "d = PretrainingData(sys.argv[1], 7, 'train', 6, shuffle='shards', "
              "window_shards=3); print(d.example_indices(np.arange(0, 300, 7)).tolist())")
    other = subprocess.run([sys.executable, "-c", script, shards], cwd=REPO, check=True,
                           capture_output=True, text=True,
                           env={**os.environ, "PYTHONHASHSEED": "12345"})
    assert other.stdout.strip() == str(here)
    # ranks split each step of the same stream
    ranks = [windowed(shards).example_indices(step_positions(5, 8, rank, 2)) for rank in (0, 1)]
    assert sorted(np.concatenate(ranks).tolist()) == sorted(
        windowed(shards).example_indices(step_positions(5, 8)).tolist())


def test_a_cached_reader_holds_only_shards_of_the_windows_of_the_batch_it_read(shards, tmp_path):
    reader = open_shards(shards, CacheOptions(root=str(tmp_path / "cache")))
    data = windowed(shards, reader=reader)
    for step in range(12):  # a bit more than an epoch (74 examples, batches of 8)
        positions = step_positions(step, 8)
        data.batch(positions)
        read = set(shard_of(reader, data.example_indices(positions)).tolist())
        epochs, within = np.divmod(positions, 74)
        windows = {(int(e), int(data.windows.window_of(e, [w])[0]))
                   for e, w in zip(epochs, within, strict=True)}
        expected = set().union(*(data.windows.window_shards_of(e, w).tolist()
                                 for e, w in windows))
        assert read <= reader.open_shards() <= expected  # earlier windows' released
        held = {name for name in reader.cache._held if name.startswith("shard-")}
        assert held == {name for shard in reader.open_shards()
                        for name in shard_files(reader.manifest.shards[shard].name)[:2]}


def test_the_config_keys_are_checked():
    assert config_from_dict({"shuffle": "shards"}).shuffle_window_shards == 16
    with pytest.raises(ConfigError) as error:
        config_from_dict({"shuffle": "shard", "shuffle_window_shards": 0})
    assert error.value.problems == ["shuffle: expected global or shards, got 'shard'",
                                    "shuffle_window_shards: must be at least 1, got 0"]


def test_a_checkpoint_from_before_the_shuffle_keys_resumes_with_its_config_given(tmp_path,
                                                                                shards):
    config = write_config(tmp_path / "config.yaml", tiny_config(max_steps=4))
    run = str(tmp_path / "run")
    assert main(["pretrain", "--shards", shards, "--output", run, "--config", config,
                 "--stop-after", "2"]) == 0
    checkpoint = load_checkpoint(latest_checkpoint(run))
    for key in ("shuffle", "shuffle_window_shards"):
        del checkpoint["config"][key]  # as written before the keys existed
    write_checkpoint(run, 2, checkpoint)
    assert main(["pretrain", "--output", run, "--resume", "--config", config]) == 0
    assert read_metrics(run)[-1]["step"] == 4


# --- runs through a bounded cache ------------------------------------------------------------

CONFIG = tiny_config(max_steps=10, eval_every=4, eval_examples=6, shuffle="shards",
                     shuffle_window_shards=2)


def two_windows_and_one(shards) -> tuple[int, int]:
    """(bytes of the 5 largest shards' training files: two windows of 2 and one for
    evaluation, bytes of all ten)."""
    manifest = ShardReader(shards).manifest
    sizes = expected_sizes(manifest)
    per_shard = sorted((sum(sizes[name] for name in shard_files(shard.name)[:2])
                        for shard in manifest.shards), reverse=True)
    return sum(per_shard[:5]), sum(per_shard)


def cached_shard_bytes(cache_root) -> dict[str, int]:
    """Bytes of each shard file in the cache."""
    (folder,) = [os.path.join(cache_root, name) for name in os.listdir(cache_root)
                 if not name.startswith(".")]
    return {name: os.path.getsize(os.path.join(folder, name)) for name in os.listdir(folder)
            if name.startswith("shard-")}


def test_a_cache_of_two_windows_trains_stops_and_resumes_as_an_uninterrupted_run(
        tmp_path, shards):
    needed, whole = two_windows_and_one(shards)
    assert needed < whole
    config = write_config(tmp_path / "config.yaml", CONFIG)
    in_place = str(tmp_path / "in-place")
    assert main(["pretrain", "--shards", shards, "--output", in_place, "--config",
                 config]) == 0
    # a DataLoader worker builds the batches: its own reader holds the windows, the training
    # process reads the held-out examples
    workers = write_config(tmp_path / "workers.yaml", {**CONFIG, "num_workers": 1})
    run, cache = str(tmp_path / "run"), str(tmp_path / "cache")
    limit = ["--shard-cache", cache, "--shard-cache-limit", str(needed)]
    assert main(["pretrain", "--shards", shards, "--output", run, "--config", workers,
                 "--stop-after", "5", *limit]) == 0
    assert main(["pretrain", "--output", run, "--resume", *limit]) == 0
    assert read_metrics(run) == read_metrics(in_place)  # losses, accuracies, eval included
    assert [e["split"] for e in read_metrics(run)].count("eval") == 2
    left = cached_shard_bytes(cache)
    assert 0 < len(left) < 20  # shards were evicted: the set never fitted
    assert sum(left.values()) <= needed


def test_a_cache_below_two_windows_is_refused_in_one_line_naming_the_numbers(
        tmp_path, shards, capsys):
    needed, _ = two_windows_and_one(shards)
    config = write_config(tmp_path / "config.yaml", CONFIG)
    assert main(["pretrain", "--shards", shards, "--output", str(tmp_path / "run"), "--config",
                 config, "--shard-cache", str(tmp_path / "cache"), "--shard-cache-limit",
                 str(needed - 1)]) == 2
    error = capsys.readouterr().err.strip()
    assert error == (
        f"winnow pretrain: the shard cache limit ({needed - 1:,} bytes) is below the "
        f"{needed:,} bytes that shuffle: shards holds at once from {shards}: tokens.bin and "
        "index.npy of the 5 largest of its 10 shards (two windows of shuffle_window_shards 2, "
        "plus one for evaluation); raise --shard-cache-limit or lower shuffle_window_shards")
    assert not os.path.exists(tmp_path / "run" / "metrics.jsonl")


def test_a_bounded_run_evaluates_from_the_reserved_shards_and_resumes_as_an_uninterrupted_run(
        tmp_path, wide_shards, monkeypatch):
    """Each evaluation's first reading of the held-out examples (one per process: they are kept
    after) takes only the two reserved shards' files from the cache."""
    from winnow.schemas.shard_cache import ShardCache
    from winnow.trainer import train

    evaluated: list[set[str]] = []  # the shard files each evaluation took from the cache
    evaluating = [False]
    acquire, validate = ShardCache.acquire, train.validate

    def recording_acquire(cache, name):
        if evaluating[0] and name.startswith("shard-"):
            evaluated[-1].add(name)
        return acquire(cache, name)

    def recording_validate(trainer):
        evaluated.append(set())
        evaluating[0] = True
        try:
            return validate(trainer)
        finally:
            evaluating[0] = False

    monkeypatch.setattr(ShardCache, "acquire", recording_acquire)
    config = {**CONFIG, "eval_examples": 8}
    in_place = str(tmp_path / "in-place")
    assert main(["pretrain", "--shards", wide_shards, "--output", in_place, "--config",
                 write_config(tmp_path / "config.yaml", config)]) == 0
    monkeypatch.setattr(train, "validate", recording_validate)
    needed, _ = two_windows_and_one(wide_shards)
    run, cache = str(tmp_path / "run"), str(tmp_path / "cache")
    limit = ["--shard-cache", cache, "--shard-cache-limit", str(needed)]
    assert main(["pretrain", "--shards", wide_shards, "--output", run, "--config",
                 str(tmp_path / "config.yaml"), "--stop-after", "5", *limit]) == 0
    assert main(["pretrain", "--output", run, "--resume", *limit]) == 0
    assert read_metrics(run) == read_metrics(in_place)  # losses, accuracies, eval included
    assert [e["split"] for e in read_metrics(run)].count("eval") == 2
    # steps 4 and 8 (after the resume): tokens.bin and index.npy of 2 shards each time
    assert [len(files) for files in evaluated] == [4, 4]
    reserved = PretrainingData(wide_shards, 7, "eval", 8, shuffle="shards").reserved_shards
    names = [shard.name for shard in ShardReader(wide_shards).manifest.shards]
    assert evaluated[0] == evaluated[1] == {file for shard in reserved.tolist()
                                            for file in shard_files(names[shard])[:2]}
