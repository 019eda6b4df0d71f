"""Parquet read on the calling thread: ``ParquetFile`` for every Parquet file winnow reads back.

Why: by default pyarrow reads with its own C++ thread pools (``use_threads=True``, and
``pre_buffer=True`` reads ahead on the I/O pool). Those pools are started on first use and are
still alive when the interpreter exits; tearing them down then races with their threads, and
the process aborts *after* all its work is done: "terminate called without an active
exception", exit code -6 (apache/arrow#34314, #39862; found here as a rare abort at the end of
``winnow curate``, whose dataset card reads kept/ back). The files winnow reads back (a column
of kept/, a report's examples, one input file in a Beam worker) are small or read batch by
batch, so one thread costs nothing measurable, and no pool is ever started.
"""

from __future__ import annotations

from typing import IO, Any

import pyarrow.parquet as pq


class ParquetFile(pq.ParquetFile):
    """``pyarrow.parquet.ParquetFile`` whose reads never start pyarrow's thread pools."""

    def __init__(self, source: str | IO[bytes], **options: Any):
        super().__init__(source, pre_buffer=False, **options)

    def read(self, columns=None, use_threads: bool = False, **options: Any):
        return super().read(columns, use_threads=use_threads, **options)

    def read_row_group(self, i: int, columns=None, use_threads: bool = False, **options: Any):
        return super().read_row_group(i, columns, use_threads=use_threads, **options)

    def iter_batches(self, batch_size: int = 65536, row_groups=None, columns=None,
                     use_threads: bool = False, **options: Any):
        return super().iter_batches(batch_size, row_groups, columns, use_threads=use_threads,
                                    **options)
