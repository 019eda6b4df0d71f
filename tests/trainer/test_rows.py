import bz2
import gzip
import json
import lzma

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from winnow.trainer.rows import expand_files, read_rows

RECORDS = [{"text": f"sentence number {i}", "label": "pos" if i % 2 else "neg"}
           for i in range(40)]
COMPRESS = {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress,
            ".zst": lambda data: zstandard.ZstdCompressor().compress(data)}


def jsonl_bytes(records) -> bytes:
    return "".join(json.dumps(record) + "\n" for record in records).encode()


@pytest.mark.parametrize("suffix", ["", *COMPRESS])
def test_jsonl_rows_in_every_compression(tmp_path, suffix):
    path = tmp_path / f"task.jsonl{suffix}"
    data = jsonl_bytes(RECORDS)
    path.write_bytes(COMPRESS[suffix](data) if suffix else data)
    rows = list(read_rows(str(path)))
    assert [row.values for row in rows] == RECORDS
    assert [row.position for row in rows] == list(range(40))


@pytest.mark.parametrize("suffix", list(COMPRESS))
def test_a_cut_file_gives_its_rows_then_one_truncated_row(tmp_path, suffix):
    path = tmp_path / f"task.jsonl{suffix}"
    whole = COMPRESS[suffix](jsonl_bytes(RECORDS * 50))
    path.write_bytes(whole[: len(whole) // 2])
    rows = list(read_rows(str(path)))
    assert rows[-1].problem == "truncated_file" and rows[-1].values is None
    assert all(row.values in RECORDS for row in rows[:-1])
    assert [row.position for row in rows] == list(range(len(rows)))


def test_bad_lines_are_rows_with_a_reason(tmp_path):
    path = tmp_path / "task.jsonl"
    path.write_bytes(b'{"text": "a", "label": 1}\n{broken\n[1, 2]\n\n\xef\xbb\xbf{"text": "b"}\n')
    rows = list(read_rows(str(path)))
    assert [(row.position, row.problem) for row in rows] == [
        (0, ""), (1, "malformed_json"), (2, "not_an_object"), (4, "")]
    assert rows[3].values == {"text": "b"}


def test_csv_tsv_parquet_and_text(tmp_path):
    (tmp_path / "t.csv").write_text('text,label\n"a, quoted",pos\nb,neg\n', encoding="utf-8")
    (tmp_path / "t.tsv").write_text("text\tlabel\na\tpos\n", encoding="utf-8")
    pq.write_table(pa.Table.from_pylist(RECORDS[:3]), tmp_path / "t.parquet")
    (tmp_path / "doc.txt").write_text("one document\nover two lines\n", encoding="utf-8")
    values = {name: [row.values for row in read_rows(str(tmp_path / name))]
              for name in ("t.csv", "t.tsv", "t.parquet", "doc.txt")}
    assert values == {
        "t.csv": [{"text": "a, quoted", "label": "pos"}, {"text": "b", "label": "neg"}],
        "t.tsv": [{"text": "a", "label": "pos"}],
        "t.parquet": RECORDS[:3],
        "doc.txt": [{"text": "one document\nover two lines\n"}],
    }


def test_an_unreadable_file_is_one_row(tmp_path):
    path = tmp_path / "task.parquet"
    path.write_bytes(b"not parquet at all")
    [row] = read_rows(str(path))
    assert (row.position, row.values, row.problem) == (0, None, "unreadable_file")


def test_expand_files_takes_folders_and_globs_and_refuses_nothing(tmp_path):
    for name in ("b.jsonl", "a.jsonl", "sub/c.csv", ".hidden"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("")
    assert expand_files([str(tmp_path), str(tmp_path / "*.jsonl")]) == [
        str(tmp_path / name) for name in ("a.jsonl", "b.jsonl", "sub/c.csv")]
    with pytest.raises(FileNotFoundError, match="no file matches"):
        expand_files([str(tmp_path / "*.parquet")])


def test_gs_files_folders_and_globs_give_the_rows_of_their_local_copies(gcs, tmp_path):
    """evaluate --text and finetune --train/--validation/--test on gs:// (the emulator)."""
    (tmp_path / "task" / "more").mkdir(parents=True)
    (tmp_path / "task" / "a.jsonl.zst").write_bytes(COMPRESS[".zst"](jsonl_bytes(RECORDS[:10])))
    (tmp_path / "task" / "b.csv").write_text(
        "text,label\n" + "".join(f"{r['text']},{r['label']}\n" for r in RECORDS[10:20]))
    pq.write_table(pa.Table.from_pylist(RECORDS[20:]), tmp_path / "task" / "more" / "c.parquet")
    url = gcs.upload(tmp_path / "task", "rows/task")
    for local, remote in ((["task"], [url]), (["task/*.csv", "task/more"],
                                             [f"{url}/*.csv", f"{url}/more"])):
        local_files = expand_files([str(tmp_path / pattern) for pattern in local])
        remote_files = expand_files(remote)
        assert [f.replace(str(tmp_path / "task"), url) for f in local_files] == remote_files
        assert ([[(r.position, r.values) for r in read_rows(f)] for f in remote_files]
                == [[(r.position, r.values) for r in read_rows(f)] for f in local_files])
    assert len(list(read_rows(f"{url}/more/c.parquet"))) == 20
    with pytest.raises(FileNotFoundError, match="no file matches"):
        expand_files([f"{url}/*.tsv"])
