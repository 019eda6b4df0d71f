"""The ``fields`` column of kept/ and removed/: every field of an input record other than its id
and text (``license``, ``url``, ``source``, nested ``meta``...), as ONE Arrow struct column.

Why one struct column (as datatrove's Parquet ``metadata``) rather than a top-level column per
field: input names cannot collide with winnow's own columns (an input ``source`` or ``language``
field stays the record's), odd names (``""``, ``"a.b"``) need no escaping, and pyarrow, pandas
(``dtype_backend="pyarrow"``) and Hugging Face ``datasets`` (``.flatten()`` gives
``fields.license``) read it typed, without a ``json.loads`` per row.

Every file of one run must have the same Arrow schema (``datasets`` refuses a folder whose files
differ), so the struct's type is unified over all the run's documents before anything is written
(``pipeline.writers.UnifyFieldTypes``). A ``FieldType`` describes the values seen:

- ``"null"`` (only nulls seen), ``"bool"``, ``"int"`` (|v| <= 2**53, exact as a float too),
  ``"int64"``, ``"float"``, ``"string"``, ``"binary"``;
- ``("list", item type)``; ``("struct", ((name, type), ...))`` with names sorted;
- ``("arrow", pa.DataType)``: another scalar pyarrow knows (a Parquet timestamp, date, decimal);
- ``"json"``: values that share no Arrow type. Such a field is stored as JSON text (``null``
  stays null), marked by the Arrow field metadata ``winnow.encoding: json``.

``merge`` is the join of a lattice (null below everything, int below int64 and float, json above
everything; lists and structs merge item- and field-wise), so the unified type is the same
whatever order and grouping the runner merges the documents in. Nothing is lost: an int and a
float field becomes float only when every int is exact as a float; an int beyond int64, an int64
with a float, a string with a number all fall back to JSON text. Empty objects (``{}``) have no
Parquet type and are written as JSON text ``{}`` too; a run whose records carry no other fields
at all gets a ``fields`` column of type null.

A field absent from a record and a field holding null both read back as null.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Union

import pyarrow as pa

FieldType = Union[str, tuple]  # noqa: UP007 (a runtime alias; X | Y fails on str | tuple)
"""One of the descriptors listed in the module docstring; plain tuples and strings, so it
pickles, compares and hashes cheaply (it travels through a Beam combine)."""

NULL, BOOL, INT, INT64, FLOAT, STRING, BINARY, JSON = (
    "null", "bool", "int", "int64", "float", "string", "binary", "json")
EMPTY_STRUCT: FieldType = ("struct", ())

JSON_ENCODING = {"winnow.encoding": "json"}
"""Arrow field metadata of a field stored as JSON text."""

_FLOAT_EXACT = 2**53
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_ARROW_SCALARS = {NULL: pa.null(), BOOL: pa.bool_(), INT: pa.int64(), INT64: pa.int64(),
                  FLOAT: pa.float64(), STRING: pa.string(), BINARY: pa.binary(),
                  JSON: pa.string()}


def describe(value: Any) -> FieldType:
    """The FieldType of one value (a decoded JSON value, or a Parquet cell as Python)."""
    if value is None:
        return NULL
    if isinstance(value, str):
        return STRING
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        if -_FLOAT_EXACT <= value <= _FLOAT_EXACT:
            return INT
        return INT64 if _INT64_MIN <= value <= _INT64_MAX else JSON
    if isinstance(value, float):
        return FLOAT
    if isinstance(value, dict):
        return describe_struct(value)
    if isinstance(value, (list, tuple)):
        item: FieldType = NULL
        for element in value:
            item = merge(item, describe(element))
        return ("list", item)
    if isinstance(value, bytes):
        return BINARY
    try:
        return ("arrow", pa.scalar(value).type)
    except (pa.ArrowException, TypeError, ValueError):
        return JSON


def describe_struct(fields: Mapping[str, Any]) -> FieldType:
    """The struct FieldType of a mapping (a record's fields); JSON when a key is not a string."""
    if not all(isinstance(name, str) for name in fields):
        return JSON
    return ("struct", tuple(sorted((name, describe(value)) for name, value in fields.items())))


def merge(a: FieldType, b: FieldType) -> FieldType:
    """The smallest type that holds the values of both (see the module docstring)."""
    if a == b or b == NULL:
        return a
    if a == NULL:
        return b
    if {a, b} == {INT, INT64}:
        return INT64
    if {a, b} == {INT, FLOAT}:
        return FLOAT
    if isinstance(a, tuple) and isinstance(b, tuple) and a[0] == b[0] == "list":
        return ("list", merge(a[1], b[1]))
    if isinstance(a, tuple) and isinstance(b, tuple) and a[0] == b[0] == "struct":
        left, right = dict(a[1]), dict(b[1])
        return ("struct", tuple((name, merge(left.get(name, NULL), right.get(name, NULL)))
                                for name in sorted(left.keys() | right.keys())))
    return JSON


def declared_struct(names: list[str]) -> FieldType:
    """A struct of null fields: the names a config asks for, present even if no record has
    them (merging it in adds the names and nothing else)."""
    return ("struct", tuple((name, NULL) for name in sorted(set(names))))


def writable(field_type: FieldType) -> FieldType:
    """``field_type`` with every empty struct (no Parquet type exists for it) made JSON."""
    if field_type == EMPTY_STRUCT:
        return JSON
    if isinstance(field_type, tuple) and field_type[0] == "list":
        return ("list", writable(field_type[1]))
    if isinstance(field_type, tuple) and field_type[0] == "struct":
        return ("struct", tuple((name, writable(child)) for name, child in field_type[1]))
    return field_type


def fields_column_type(run_type: FieldType) -> FieldType:
    """The writable type of the whole ``fields`` column: null when no record had a field."""
    return NULL if run_type == EMPTY_STRUCT else writable(run_type)


def arrow_field(name: str, field_type: FieldType) -> pa.Field:
    """The Arrow field of a writable FieldType; JSON fields carry ``JSON_ENCODING``."""
    return pa.field(name, arrow_type(field_type),
                    metadata=JSON_ENCODING if field_type == JSON else None)


def arrow_type(field_type: FieldType) -> pa.DataType:
    if isinstance(field_type, str):
        return _ARROW_SCALARS[field_type]
    kind, inner = field_type
    if kind == "list":
        # "element" is the child name Parquet's compliant list layout reads back.
        return pa.list_(arrow_field("element", inner))
    if kind == "struct":
        return pa.struct([arrow_field(name, child) for name, child in inner])
    return inner  # ("arrow", pa.DataType)


def encode(value: Any, field_type: FieldType) -> Any:
    """``value`` as pyarrow takes it for a column of writable ``field_type``."""
    if value is None or field_type == NULL:
        return None
    if field_type == JSON:
        return to_json_text(value)
    if field_type == FLOAT:
        return float(value)  # ints merged into a float field are exact as floats
    if isinstance(field_type, tuple) and field_type[0] == "list":
        return [encode(element, field_type[1]) for element in value]
    if isinstance(field_type, tuple) and field_type[0] == "struct":
        return {name: encode(value.get(name), child) for name, child in field_type[1]}
    return value


def to_json_text(value: Any) -> str:
    """JSON text of a value with no common Arrow type: keys sorted, so equal values give equal
    bytes; NaN and Infinity as Python's json writes them; other Python objects (a Parquet
    timestamp or decimal that clashed with another type) by their ``str``."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def decode(value: Any, field: pa.Field) -> Any:
    """A value read back from a column of ``field`` (a ``fields`` struct, or one of its
    children) with the JSON-text fields parsed: the record's field as the reader saw it."""
    if value is None:
        return None
    if (field.metadata or {}).get(b"winnow.encoding") == b"json":
        return json.loads(value)
    if pa.types.is_struct(field.type):
        return {child.name: decode(value.get(child.name), child) for child in field.type}
    if pa.types.is_list(field.type):
        return [decode(element, field.type.value_field) for element in value]
    return value
