import functools
import io
import json
import math
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from winnow.schemas.fields import (
    JSON,
    JSON_ENCODING,
    arrow_field,
    describe,
    describe_struct,
    encode,
    fields_column_type,
    merge,
)


def unified(records: list[dict]):
    unified_type = ("struct", ())
    for record in records:
        unified_type = merge(unified_type, describe_struct(record))
    return fields_column_type(unified_type)


def round_trip(records: list[dict]) -> tuple[pa.Field, list]:
    """The records written as one Parquet ``fields`` column and read back."""
    column_type = unified(records)
    field = arrow_field("fields", column_type)
    table = pa.table({"fields": pa.array([encode(r, column_type) for r in records],
                                         field.type)}, schema=pa.schema([field]))
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    back = pq.read_table(io.BytesIO(buffer.getvalue()))
    return back.schema.field("fields"), back.column("fields").to_pylist()


def test_types_without_conflicts_keep_their_values_exactly():
    records = [
        {"license": "MIT", "n": 3, "score": 0.5, "ok": True, "tags": ["a", "b"],
         "meta": {"url": "https://a", "depth": {"x": 1}}, "nothing": None, "blob": b"\x00\xff"},
        {"license": None, "n": -(2**62), "score": 2, "ok": False, "tags": [],
         "meta": {"url": "https://b", "lang": "en"}},
    ]
    field, values = round_trip(records)
    assert field.type.field("license").type == pa.string()
    assert field.type.field("n").type == pa.int64()
    assert field.type.field("score").type == pa.float64()  # 2 is exact as a float
    assert field.type.field("nothing").type == pa.null()
    assert values[0] == {**records[0], "meta": {**records[0]["meta"], "lang": None}}
    assert values[1] == {**records[1], "nothing": None, "blob": None,
                         "meta": {**records[1]["meta"], "depth": None}}
    assert isinstance(values[1]["score"], float)


@pytest.mark.parametrize("values", [
    [1, "one"],                 # int and string
    [True, 1],                  # bool is not an int
    [2**53 + 1, 0.5],           # an int64 that a float would round
    [2**70],                    # beyond int64
    [[1], {"a": 1}],            # list and object
    [{}, {}],                   # an object with no fields has no Parquet type
])
def test_values_without_a_common_type_become_json_text(values):
    field, back = round_trip([{"v": value} for value in values])
    child = field.type.field("v")
    assert child.type == pa.string() and child.metadata == {
        key.encode(): value.encode() for key, value in JSON_ENCODING.items()}
    assert [json.loads(row["v"]) for row in back] == values


def test_nan_and_nulls_survive():
    field, back = round_trip([{"x": float("nan"), "y": None}, {"x": None, "y": [None, 1]}])
    assert math.isnan(back[0]["x"]) and back[1]["x"] is None
    assert back[0]["y"] is None and back[1]["y"] == [None, 1]
    nan_in_json = round_trip([{"z": float("nan")}, {"z": "text"}])[1]
    assert nan_in_json[0]["z"] == "NaN" and nan_in_json[1]["z"] == '"text"'


def tree_merge(types: list):
    """Merge as a runner's combine may: halves separately, then together."""
    if len(types) == 1:
        return types[0]
    middle = len(types) // 2
    return merge(tree_merge(types[:middle]), tree_merge(types[middle:]))


def test_the_unified_type_does_not_depend_on_order_or_grouping():
    records = [{"a": 1}, {"a": 0.5}, {"a": None, "b": {"c": 1}}, {"b": {"c": "x", "d": []}},
               {"b": {"d": [1]}}, {"e": 2**60}, {"e": 3}, {"f": {}}, {"f": {"g": True}}]
    types = set()
    for seed in range(200):
        order = [describe_struct(record) for record in records]
        random.Random(seed).shuffle(order)
        types.add(tree_merge(order))
        types.add(functools.reduce(merge, order))
    assert types == {("struct", (
        ("a", "float"), ("b", ("struct", (("c", JSON), ("d", ("list", "int"))))),
        ("e", "int64"), ("f", ("struct", (("g", "bool"),)))))}


def test_a_run_without_other_fields_has_a_null_column():
    assert unified([{}, {}]) == "null"
    assert round_trip([{}, {}]) == (pa.field("fields", pa.null()), [None, None])


def test_non_json_scalars_keep_their_arrow_type_or_fall_back_to_text():
    import datetime

    day = datetime.date(2024, 3, 12)
    assert describe(day) == ("arrow", pa.date32())
    field, back = round_trip([{"d": day}, {"d": None}])
    assert field.type.field("d").type == pa.date32() and back[0]["d"] == day
    assert round_trip([{"d": day}, {"d": 1}])[1] == [{"d": '"2024-03-12"'}, {"d": "1"}]
