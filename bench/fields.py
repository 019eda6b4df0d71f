"""What keeping the input fields costs, outside Beam: reading, unifying and writing the kept
rows of a corpus with every field (``input.keep_fields: ["*"]``) against none (``[]``).

    python bench/fields.py ../shared/corpora/{linux-doc,python-doc,perl-doc}.jsonl.gz

Times are the fewest CPU seconds of ``--repeat`` runs of each step in this process (one core,
after one unmeasured read of every file), so they hold up on a busy machine where the
end-to-end wall time of a curation does not. Sizes
are the Parquet bytes of all documents written as kept/ rows in one file.
"""

from __future__ import annotations

import argparse
import time

from winnow.pipeline.readers import (
    InputConfig,
    read_records,
)
from winnow.pipeline.writers import FieldTypesFn, encode_parquet, kept_row
from winnow.schemas.fields import arrow_field, declared_struct, encode, fields_column_type
from winnow.schemas.records import FIELDS_COLUMN, KEPT_SCHEMA, Document, with_fields_type


def best_of(repeat: int, step):
    """(fewest CPU seconds, result) of ``repeat`` calls of ``step``. CPU time rather than wall
    time: other processes on the machine then delay the step without counting in it."""
    timings, result = [], None
    for _ in range(repeat):
        started = time.process_time()
        result = step()
        timings.append(time.process_time() - started)
    return min(timings), result


def measure(paths: list[str], config: InputConfig, repeat: int) -> dict[str, float]:
    read_s, docs = best_of(repeat, lambda: [
        record for path in paths for record in read_records(path, config)
        if isinstance(record, Document)])
    combine = FieldTypesFn(declared_struct(config.kept_field_names()))

    def unify():
        accumulator = combine.create_accumulator()
        for doc in docs:
            accumulator = combine.add_input(accumulator, doc)
        return fields_column_type(accumulator)

    unify_s, column_type = best_of(repeat, unify)
    schema = with_fields_type(KEPT_SCHEMA, arrow_field(FIELDS_COLUMN, column_type))

    def write():
        rows = [kept_row(doc) for doc in docs]
        for row in rows:
            row[FIELDS_COLUMN] = encode(row[FIELDS_COLUMN], column_type)
        return encode_parquet(rows, schema)

    write_s, data = best_of(repeat, write)
    return {"documents": len(docs), "read_s": read_s, "unify_s": unify_s, "write_s": write_s,
            "parquet_bytes": len(data), "fields_type": str(schema.field(FIELDS_COLUMN).type)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for path in args.inputs:  # warm the page cache, so that neither setting pays for it
        for _ in read_records(path, InputConfig()):
            pass
    results = {name: measure(args.inputs, InputConfig(keep_fields=keep), args.repeat)
               for name, keep in (("no fields", ()), ("all fields", ("*",)))}
    print(f"{'':<11} {'docs':>6} {'read s':>7} {'unify s':>8} {'write s':>8} {'Parquet bytes':>14}")
    for name, figures in results.items():
        print(f"{name:<11} {figures['documents']:>6,} {figures['read_s']:>7.2f} "
              f"{figures['unify_s']:>8.3f} {figures['write_s']:>8.2f} "
              f"{figures['parquet_bytes']:>14,}   fields: {figures['fields_type']}")
    none, every = results["no fields"], results["all fields"]
    print(f"all/none: read {every['read_s'] / none['read_s']:.2f}x, write "
          f"{every['write_s'] / none['write_s']:.2f}x, size "
          f"{every['parquet_bytes'] / none['parquet_bytes']:.4f}x")


if __name__ == "__main__":
    main()
