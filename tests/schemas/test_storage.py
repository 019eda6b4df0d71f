"""schemas.storage: the same answers for a local folder and its copy on gs:// (the emulator)."""

import os
import sys

import pytest

from winnow.schemas import storage


@pytest.fixture()
def folder(tmp_path):
    """a.bin (300 bytes), b.txt, sub/c.txt."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.bin").write_bytes(bytes(range(256)) + b"x" * 44)
    (tmp_path / "b.txt").write_bytes(b"hello\n")
    (tmp_path / "sub" / "c.txt").write_bytes(b"c")
    return tmp_path


@pytest.fixture(params=["local", "gs"])
def where(request, folder):
    """The folder as a local path, and as gs://winnow-test/... ."""
    if request.param == "local":
        return str(folder)
    gcs = request.getfixturevalue("gcs")
    return gcs.upload(folder, f"storage/{request.node.name}")


def test_reads_lists_and_sizes_files(where):
    assert storage.listdir(where) == ["a.bin", "b.txt", "sub"]
    assert storage.listdir(storage.join(where, "sub")) == ["c.txt"]
    assert storage.size(storage.join(where, "a.bin")) == 300
    assert storage.read_bytes(storage.join(where, "b.txt")) == b"hello\n"
    with storage.open_read(storage.join(where, "a.bin")) as handle:
        handle.seek(250)
        assert handle.read(8) == bytes(range(250, 256)) + b"xx"
    assert storage.is_file(storage.join(where, "b.txt"))
    assert not storage.is_file(storage.join(where, "sub"))
    assert not storage.is_file(storage.join(where, "nothing"))


def test_a_missing_file_or_folder_is_file_not_found(where):
    missing = storage.join(where, "nothing")
    for call in (storage.size, storage.read_bytes, storage.listdir):
        with pytest.raises(FileNotFoundError, match="nothing"):
            call(missing)


def test_copies_to_a_local_file(where, tmp_path):
    target = tmp_path / "copy.bin"
    assert storage.copy_to_local(storage.join(where, "a.bin"), target) == str(target)
    assert target.read_bytes() == bytes(range(256)) + b"x" * 44
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("copy")) == ["copy.bin"]


def test_joins_gs_paths_with_slashes():
    assert storage.join("gs://b/run/", "shards", "x.npy") == "gs://b/run/shards/x.npy"
    assert storage.is_remote("gs://b/k") and not storage.is_remote("/tmp/x")


def test_other_schemes_are_refused_by_name():
    with pytest.raises(ValueError, match="s3://"):
        storage.size("s3://bucket/key")


def test_without_google_cloud_storage_gs_names_the_extra(monkeypatch):
    monkeypatch.setattr(storage, "_CLIENTS", {})
    for module in ("google.cloud", "google.cloud.storage"):
        monkeypatch.setitem(sys.modules, module, None)  # importing it fails
    with pytest.raises(ImportError, match=r"pip install 'winnow\[gcs\]' \(or \[gcp\]"):
        storage.size("gs://bucket/key")


def test_the_emulator_environment_ends_with_its_block(gcs_server):
    """Tests that do not ask for the emulator (Dataflow dry runs on made-up buckets) never see
    it."""
    assert os.environ.get("STORAGE_EMULATOR_HOST") != gcs_server.host
    with gcs_server.environment():
        assert os.environ["STORAGE_EMULATOR_HOST"] == gcs_server.host
        assert os.environ["NO_GCE_CHECK"] == "true"
    assert os.environ.get("STORAGE_EMULATOR_HOST") != gcs_server.host
