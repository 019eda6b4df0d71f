"""The shard cache (schemas/shard_cache.py): a "remote" that is a local folder, with failures
injected (a missing file, corrupt bytes), two processes sharing one cache, the size limit, and
a gs:// folder in the Cloud Storage emulator."""

import fcntl
import multiprocessing
import os
import shutil
import threading

import numpy as np
import pytest

from tests.tiny_tokenizer import train_tokenizer
from winnow.schemas.shard_cache import (
    CacheOptions,
    ShardCache,
    ShardCacheError,
    ShardCacheFullError,
    copy_file,
    open_shards,
    parse_size,
)
from winnow.schemas.shard_format import write_shard_set
from winnow.schemas.shard_reader import ShardReader


@pytest.fixture(scope="module")
def remote(tmp_path_factory):
    """A shard folder of 30 examples in 3 shards of 10 (its tokens.bin 40-80 bytes each)."""
    tokenizer = train_tokenizer(tmp_path_factory.mktemp("spm"))
    rng = np.random.default_rng(0)
    examples = [(rng.integers(5, 90, rng.integers(1, 4)).tolist(),
                 rng.integers(5, 90, rng.integers(1, 4)).tolist(), int(rng.integers(0, 2)))
                for _ in range(30)]
    folder = tmp_path_factory.mktemp("remote") / "shards"
    write_shard_set(folder, examples, tokenizer, objective="sop", max_seq_len=12,
                    examples_per_shard=10)
    return str(folder)


def all_examples(reader):
    return [(a.tolist(), b.tolist(), label) for a, b, label in
            (reader.example(i) for i in range(len(reader)))]


class CountingCopy:
    """A ``download`` that copies and records each remote path it fetched (a file per fetch, so
    it counts across processes)."""

    def __init__(self, log_dir, corrupt=(), corrupt_times=99):
        self.log_dir, self.corrupt, self.corrupt_times = str(log_dir), corrupt, corrupt_times
        os.makedirs(self.log_dir, exist_ok=True)

    def __call__(self, remote_path, local_path):
        copy_file(remote_path, local_path)
        name = os.path.basename(remote_path)
        fetched = [f for f in os.listdir(self.log_dir) if f.startswith(name + ".")]
        with open(os.path.join(self.log_dir, f"{name}.{os.getpid()}.{len(fetched)}"), "w"):
            pass
        if name in self.corrupt and len(fetched) < self.corrupt_times:
            with open(local_path, "r+b") as handle:
                first = handle.read(1)
                handle.seek(0)
                handle.write(bytes([first[0] ^ 0xFF]))

    def fetched(self) -> list[str]:
        return sorted(f.rsplit(".", 2)[0] for f in os.listdir(self.log_dir))


def test_a_cached_reader_reads_the_remote_examples_fetching_only_training_files(
        remote, tmp_path):
    download = CountingCopy(tmp_path / "log")
    reader = open_shards(remote, CacheOptions(root=str(tmp_path / "cache")), download)
    assert all_examples(reader) == all_examples(ShardReader(remote))
    # tokens and index of every shard, the manifest; never documents.jsonl or provenance.npy
    assert download.fetched() == ["manifest.json"] + sorted(
        f"shard-0000{i}.{suffix}" for i in range(3) for suffix in ("index.npy", "tokens.bin"))
    cached = sorted(os.listdir(reader.directory))
    assert "shard-00000.documents.jsonl" not in cached and "shard-00002.tokens.bin" in cached
    # a second reader of the same cache fetches nothing again but the manifest
    again = open_shards(remote, CacheOptions(root=str(tmp_path / "cache")), download)
    assert all_examples(again) == all_examples(reader)
    assert download.fetched().count("shard-00000.tokens.bin") == 1
    assert os.listdir(os.path.join(reader.directory, ".partial")) == []


def test_a_run_folder_location_finds_its_shards_folder(remote, tmp_path):
    reader = open_shards(os.path.dirname(remote), CacheOptions(root=str(tmp_path)))
    assert reader.cache.location == remote and len(reader) == 30


def test_a_missing_remote_file_is_an_error_naming_it(remote, tmp_path):
    broken = shutil.copytree(remote, tmp_path / "broken")
    os.remove(broken / "shard-00001.index.npy")
    reader = open_shards(str(broken), CacheOptions(root=str(tmp_path / "cache")))
    reader.example(0)  # shard 0 is whole
    with pytest.raises(ShardCacheError, match=r"broken/shard-00001\.index\.npy: missing"):
        reader.example(15)


def test_corrupt_bytes_are_fetched_again_then_refused_naming_the_file(remote, tmp_path):
    once = CountingCopy(tmp_path / "once", corrupt={"shard-00002.tokens.bin"}, corrupt_times=1)
    reader = open_shards(remote, CacheOptions(root=str(tmp_path / "a")), once)
    assert all_examples(reader) == all_examples(ShardReader(remote))  # the retry was whole
    assert once.fetched().count("shard-00002.tokens.bin") == 2

    always = CountingCopy(tmp_path / "always", corrupt={"shard-00002.tokens.bin"})
    reader = open_shards(remote, CacheOptions(root=str(tmp_path / "b")), always)
    with pytest.raises(ShardCacheError, match=r"shards/shard-00002\.tokens\.bin: sha256 .* "
                                              r"does not match the manifest's .*fetched twice"):
        reader.example(25)
    assert not os.path.exists(os.path.join(reader.directory, "shard-00002.tokens.bin"))
    assert os.listdir(os.path.join(reader.directory, ".partial")) == []
    assert os.listdir(os.path.join(reader.directory, ".reserved")) == []


def test_a_corrupt_manifest_is_refused_naming_it(remote, tmp_path):
    broken = shutil.copytree(remote, tmp_path / "broken")
    text = (broken / "manifest.json").read_text().replace('"examples": 30', '"examples": 31')
    (broken / "manifest.json").write_text(text)
    with pytest.raises(ShardCacheError, match=r"(?s)broken/manifest.json: .*manifest_sha256"):
        open_shards(str(broken), CacheOptions(root=str(tmp_path / "cache")))


def test_the_limit_evicts_unused_files_least_recently_used_first_and_refuses_too_small(
        remote, tmp_path):
    def shard(number):
        return [f"shard-0000{number}.tokens.bin", f"shard-0000{number}.index.npy"]

    shard_bytes = sum(os.path.getsize(os.path.join(remote, name)) for name in shard(0))
    cache = ShardCache.open(remote, CacheOptions(root=str(tmp_path / "cache"),
                                                 limit_bytes=2 * shard_bytes + 8))
    for number in (0, 1, 0):  # shard 0 used last: shard 1 is the least recently used
        for name in shard(number):
            cache.acquire(name)
            cache.release(name)
    for name in shard(2):
        cache.acquire(name)
    present = sorted(n for n in os.listdir(cache.folder) if n.startswith("shard-"))
    assert present == sorted(shard(0) + shard(2))
    for name in shard(0):
        cache.acquire(name)
    # shards 0 and 2 in use: no room for shard 1, and nothing in use was deleted
    with pytest.raises(ShardCacheFullError, match=r"shard-00001\.tokens\.bin: no room in the "
                                                  r"shard cache .* in use"):
        cache.acquire("shard-00001.tokens.bin")
    assert sorted(n for n in os.listdir(cache.folder) if n.startswith("shard-")) == present
    # a single file over the limit
    tiny = ShardCache.open(remote, CacheOptions(root=str(tmp_path / "tiny"), limit_bytes=16))
    with pytest.raises(ShardCacheFullError, match=r"shard-00000\.tokens\.bin: \d+ bytes, more "
                                                  r"than the shard cache limit of 16"):
        tiny.acquire("shard-00000.tokens.bin")


def test_a_fetch_never_waits_for_a_process_that_holds_the_file_in_use(remote, tmp_path):
    """A process that took the use lock of an absent file (to look for it) and keeps it, as a
    run keeps its files, must not stall another's fetch of that file: the fetch has a lock of
    its own. (With one lock for both, upgraded to exclusive to fetch, DDP ranks that raced for
    the same file could wait for each other until the end of the run.)"""
    cache = ShardCache.open(remote, CacheOptions(root=str(tmp_path)))
    holder = os.open(os.path.join(cache.folder, ".locks", "shard-00000.tokens.bin"),
                     os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_SH)
    fetcher = threading.Thread(target=cache.acquire, args=("shard-00000.tokens.bin",),
                               daemon=True)
    fetcher.start()
    fetcher.join(timeout=60)
    os.close(holder)
    assert not fetcher.is_alive()
    assert os.path.exists(os.path.join(cache.folder, "shard-00000.tokens.bin"))


def _read_all(remote, root, log_dir, out):
    download = CountingCopy(log_dir)
    reader = open_shards(remote, CacheOptions(root=root, prefetch_threads=2), download)
    reader.prefetch(np.arange(len(reader))[::-1])
    out.put(all_examples(reader))


def test_two_processes_share_one_cache_and_fetch_each_file_once(remote, tmp_path):
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    root, log_dir = str(tmp_path / "cache"), str(tmp_path / "log")
    workers = [context.Process(target=_read_all, args=(remote, root, log_dir, out))
               for _ in range(2)]
    for worker in workers:
        worker.start()
    results = [out.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    assert results[0] == results[1] == all_examples(ShardReader(remote))
    fetched = CountingCopy(log_dir).fetched()
    shard_files = [name for name in fetched if name.startswith("shard-")]
    assert len(shard_files) == len(set(shard_files)) == 6  # each once, by one process
    assert fetched.count("manifest.json") == 2


def test_parse_size():
    assert parse_size("4096") == 4096
    assert parse_size("1.5G") == 3 << 29
    assert parse_size("200GiB") == 200 << 30
    with pytest.raises(ValueError, match="'lots' is not a size"):
        parse_size("lots")


def test_a_gs_folder_reads_through_the_cache(remote, tmp_path, gcs):
    url = gcs.upload(remote, "cache-test/shards")
    reader = open_shards(gcs.url("cache-test"), CacheOptions(root=str(tmp_path / "cache")))
    assert reader.cache.location == url
    assert all_examples(reader) == all_examples(ShardReader(remote))
    gcs.client().bucket("winnow-test").blob("cache-test/shards/shard-00001.tokens.bin").delete()
    fresh = open_shards(url, CacheOptions(root=str(tmp_path / "fresh")))
    with pytest.raises(ShardCacheError, match=r"gs://winnow-test/cache-test/shards/"
                                              r"shard-00001\.tokens\.bin: missing"):
        fresh.example(12)


def test_the_limit_covers_every_set_of_the_root_and_ignores_a_dead_fetch(remote, tmp_path):
    root = str(tmp_path / "cache")
    first = ShardCache.open(remote, CacheOptions(root=root))
    for name in ("shard-00000.tokens.bin", "shard-00000.index.npy"):
        first.acquire(name)
        first.release(name)
    # a process that died fetching left a reservation larger than the limit
    with open(os.path.join(first.folder, ".reserved", "shard-00001.tokens.bin"), "wb") as dead:
        dead.truncate(1 << 20)
    # another set under the same root (a folder of its own), limited to its own size
    second = ShardCache(remote, first.manifest, root, limit_bytes=first.training_bytes())
    second.folder = os.path.join(root, "another-set")
    second._make_folders()
    for number in range(3):  # the whole second set fits once the first set's files go
        for name in (f"shard-0000{number}.tokens.bin", f"shard-0000{number}.index.npy"):
            second.acquire(name)
    assert not any(name.startswith("shard-") for name in os.listdir(first.folder))
    assert os.listdir(os.path.join(first.folder, ".reserved")) == []


def test_prefetch_asks_for_shards_in_the_order_the_examples_first_read_them(remote):
    class Recorder:
        def prefetch(self, names):
            self.names = list(names)

    reader = ShardReader(remote, cache=Recorder())
    reader.prefetch(np.array([25, 3, 21]))  # shards 2, 0, 2 (10 examples each); 1 unread
    assert reader.cache.names == [f"shard-0000{shard}.{suffix}" for shard in (2, 0, 1)
                                  for suffix in ("tokens.bin", "index.npy")]


def _try_fetch_lock_in_child(cache, name, go, out):
    go.wait(60)
    fd = os.open(os.path.join(cache.folder, ".fetching", name), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        out.put("free")
    except BlockingIOError:
        out.put("held")
    finally:
        os.close(fd)


def test_a_process_forked_while_a_prefetch_thread_fetches_keeps_no_copy_of_its_lock(
        remote, tmp_path):
    """A DataLoader worker is forked while a prefetch thread fetches: its copy of the fetch
    lock the thread holds would keep that lock held in the worker after the thread released it
    (a flock belongs to the open file the two descriptors share), and a worker that then
    fetched the file itself (evicted meanwhile) waited forever on its own copy."""
    fetching, finish = threading.Event(), threading.Event()
    name = "shard-00000.tokens.bin"

    def slow_copy(remote_path, local_path):
        if remote_path.endswith(name):
            fetching.set()
            finish.wait(60)
        copy_file(remote_path, local_path)

    cache = ShardCache.open(remote, CacheOptions(root=str(tmp_path)), slow_copy)
    threads = cache.prefetch([name])
    assert fetching.wait(60)  # a prefetch thread holds the fetch lock of the file now
    context = multiprocessing.get_context("fork")
    go, out = context.Event(), context.Queue()
    child = context.Process(target=_try_fetch_lock_in_child, args=(cache, name, go, out))
    child.start()
    finish.set()
    for thread in threads:
        thread.join(60)  # the fetch is done and the thread closed its lock
    go.set()
    assert out.get(timeout=60) == "free"
    child.join(timeout=60)
