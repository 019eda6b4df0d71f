"""Typed configuration from YAML: frozen dataclasses built from (partial) mappings.

Shared by the curation config (``pipeline.config``) and the training config
(``trainer.config``). A mapping names only what it changes; every unknown key, wrong type and
invalid value is collected into one ``ConfigError`` before anything runs. A dataclass validates
its values either with an ``errors() -> list[str]`` method or by raising a ``ValueError`` whose
``problems`` attribute lists them from ``__post_init__``.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import textwrap
import types
import typing
from typing import Any


class ConfigError(ValueError):
    """Every problem found in a config, one per line (one problem: one line with the title);
    ``problems`` holds them as a list."""

    def __init__(self, problems: list[str], title: str = "invalid config"):
        separator = " " if len(problems) == 1 else "\n  "
        super().__init__(f"{title}:{separator}" + "\n  ".join(problems))
        self.problems = problems


_INVALID = object()


def build_config(cls: type, data: dict[str, Any] | None, title: str = "invalid config") -> Any:
    """An instance of dataclass ``cls`` from ``data``; ConfigError listing every problem."""
    problems: list[str] = []
    instance = _build(cls, data or {}, "", problems)
    if problems:
        raise ConfigError(problems, title)
    return instance


def to_plain_dict(config: Any) -> dict[str, Any]:
    """Plain dict (tuples as lists) of a config, ready for YAML, JSON or a checkpoint."""
    def plain(value: Any) -> Any:
        if isinstance(value, (tuple, list)):
            return [plain(item) for item in value]
        if isinstance(value, dict):
            return {key: plain(item) for key, item in value.items()}
        return value

    return plain(dataclasses.asdict(config))


def field_docstrings(cls: type) -> dict[str, str]:
    """Field name -> the string literal written under it in the class body."""
    class_def = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0]
    assert isinstance(class_def, ast.ClassDef), f"{cls} is not a class"
    body = class_def.body
    docs = {}
    for node, following in zip(body, body[1:], strict=False):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)):
            docs[node.target.id] = following.value.value
    return docs


def reference_table(cls: type, fallback_docs: dict[str, str] | None = None) -> list[str]:
    """Markdown table lines: every field of ``cls`` with its default and docstring."""
    docs = {**(fallback_docs or {}), **field_docstrings(cls)}
    lines = ["| key | default | meaning |", "|---|---|---|"]
    for name, default in to_plain_dict(cls()).items():
        meaning = " ".join(docs.get(name, "").split()).replace("|", "\\|")
        lines.append(f"| `{name}` | `{json.dumps(default)}` | {meaning} |")
    return lines


def _build(cls: type, data: Any, where: str, problems: list[str]) -> Any:
    """Instantiate ``cls`` from ``data``, appending problems instead of raising."""
    if not isinstance(data, dict):
        problems.append(f"{where.rstrip('.') or 'config'}: expected a mapping, got {data!r}")
        return _INVALID
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    for key in sorted(set(data) - set(known)):
        problems.append(f"{where}{key}: unknown key (known: {', '.join(known)})")
    values = {name: _coerce(hints[name], data[name], f"{where}{name}", problems)
              for name in known if name in data}
    try:
        instance = cls(**{k: v for k, v in values.items() if v is not _INVALID})
    except ValueError as error:  # validated in __post_init__
        problems.extend(f"{where}{problem}"
                        for problem in getattr(error, "problems", [str(error)]))
        return _INVALID
    problems.extend(f"{where}{problem}" for problem in getattr(instance, "errors", list)())
    return instance


def optional_type(hint: Any) -> Any:
    """``T`` of an ``T | None`` hint (a field whose None means "derive it"), else None."""
    if typing.get_origin(hint) not in (typing.Union, types.UnionType):
        return None
    rest = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    return rest[0] if len(rest) == 1 else None


def _coerce(hint: Any, value: Any, where: str, problems: list[str]) -> Any:
    inner = optional_type(hint)
    if inner is not None:
        return None if value is None else _coerce(inner, value, where, problems)
    origin = typing.get_origin(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _build(hint, value, where + ".", problems)
    if origin is tuple:
        return _coerce_tuple(typing.get_args(hint), value, where, problems)
    if origin is dict and isinstance(value, dict):
        return value  # free-form mapping, validated by the owning class
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (bool, int, float, str) and type(value) is hint:
        return value
    problems.append(f"{where}: expected {getattr(hint, '__name__', hint)}, got {value!r}")
    return _INVALID


def _coerce_tuple(item_types: tuple, value: Any, where: str, problems: list[str]) -> Any:
    """``tuple[T, ...]`` takes a list of any length; ``tuple[A, B]`` exactly two items."""
    if not isinstance(value, (list, tuple)):
        problems.append(f"{where}: expected a list, got {value!r}")
        return _INVALID
    variadic = len(item_types) == 2 and item_types[1] is Ellipsis
    if not variadic and len(value) != len(item_types):
        problems.append(f"{where}: expected {len(item_types)} items, got {value!r}")
        return _INVALID
    types = [item_types[0]] * len(value) if variadic else list(item_types)
    items = [_coerce(item_type, item, f"{where}[{i}]", problems)
             for i, (item_type, item) in enumerate(zip(types, value, strict=True))]
    return _INVALID if _INVALID in items else tuple(items)
