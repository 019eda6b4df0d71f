"""The run configuration: one YAML file, one section per stage.

A config file names only what it changes; everything else keeps the defaults below (print them
with ``winnow curate --print-config``). Unknown keys, wrong types and invalid values are all
collected into one ``ConfigError`` before anything runs. Each stage's thresholds are defined next
to its rules in ``filters/`` (with a docstring per field); this module assembles them.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import textwrap
import typing
from dataclasses import dataclass, field
from typing import Any

import yaml
from filters.minhash import NearDedupConfig

from filters.dedup import ExactDedupConfig
from filters.heuristics import HeuristicsConfig
from filters.language import LanguageConfig
from filters.normalize import NormalizeConfig
from filters.pairs import PairsConfig
from filters.pii import PiiConfig
from filters.quality import QualityConfig
from filters.sentences import SentencesConfig
from filters.tokenizer import TokenizerConfig

ENABLED_DOC = "Run this stage; when false, documents pass through it untouched."


class ConfigError(ValueError):
    """Every problem found in a config, one per line."""


@dataclass(frozen=True)
class InputConfig:
    id_field: str = "id"
    """JSONL/Parquet field holding the document id. Records without one get
    ``<file>:<record index>``, which is stable across runs."""
    text_field: str = "text"
    """JSONL/Parquet field holding the document text."""
    format: str = "auto"
    """jsonl, parquet, text (one document per file), or auto (by file extension: .jsonl,
    .jsonl.gz, .jsonl.zst, .json, .parquet; anything else is text)."""

    def errors(self) -> list[str]:
        if self.format not in ("auto", "jsonl", "parquet", "text"):
            return [f"format must be auto, jsonl, parquet or text, got {self.format!r}"]
        return []


@dataclass(frozen=True)
class OutputConfig:
    num_shards: int = 8
    """Parquet files per output folder (kept/, removed/, quarantined/). Each file's records are
    sorted by id inside one worker, so pick about total size / 256 MB for large corpora."""
    removed_text_max_chars: int = 0
    """Truncate the text stored in removed/ to this many characters; 0 keeps it whole."""
    examples_per_reason: int = 5
    """Example documents per removal reason kept in report.json (PII redacted)."""

    def errors(self) -> list[str]:
        problems = []
        if self.num_shards < 1:
            problems.append(f"num_shards must be at least 1, got {self.num_shards!r}")
        if self.removed_text_max_chars < 0:
            problems.append("removed_text_max_chars must be 0 or more")
        if self.examples_per_reason < 0:
            problems.append("examples_per_reason must be 0 or more")
        return problems


@dataclass(frozen=True)
class ShardsConfig:
    enabled: bool = True
    """End the run in training shards (DIR/shards/): sentences, pairs, SentencePiece tokens."""
    examples_per_shard: int = 100_000
    """Examples in each shard file but the last. One shard is assembled in one worker's memory
    (about 1 KB per example at max_seq_len 128)."""
    group_documents: int = 1_000
    """Documents per pairing group: the unit a worker turns into examples at once, and NSP's
    pool of other documents for random next segments."""

    def errors(self) -> list[str]:
        problems = []
        for name in ("examples_per_shard", "group_documents"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)!r}")
        return problems


@dataclass(frozen=True)
class WinnowConfig:
    input: InputConfig = field(default_factory=InputConfig)
    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)
    heuristics: HeuristicsConfig = field(default_factory=HeuristicsConfig)
    language: LanguageConfig = field(default_factory=LanguageConfig)
    exact_dedup: ExactDedupConfig = field(default_factory=ExactDedupConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    near_dedup: NearDedupConfig = field(default_factory=NearDedupConfig)
    pii: PiiConfig = field(default_factory=PiiConfig)
    sentences: SentencesConfig = field(default_factory=SentencesConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    pairs: PairsConfig = field(default_factory=PairsConfig)
    shards: ShardsConfig = field(default_factory=ShardsConfig)
    output: OutputConfig = field(default_factory=OutputConfig)


def config_from_dict(data: dict[str, Any] | None) -> WinnowConfig:
    """Build a config from a (partial) mapping; raise ConfigError listing every problem."""
    problems: list[str] = []
    config = _build(WinnowConfig, data or {}, "", problems)
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
    return config


def load_config(path: str | None) -> WinnowConfig:
    """Read a YAML config file (local or any Beam filesystem path); None gives the defaults."""
    if path is None:
        return WinnowConfig()
    from apache_beam.io.filesystems import FileSystems  # only the CLI loads files this way

    with FileSystems.open(path) as handle:
        try:
            data = yaml.safe_load(handle.read().decode("utf-8"))
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML: {error}") from error
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    try:
        return config_from_dict(data)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain dict (tuples as lists) of a config, ready for YAML or JSON."""
    def plain(value: Any) -> Any:
        if isinstance(value, (tuple, list)):
            return [plain(item) for item in value]
        if isinstance(value, dict):
            return {key: plain(item) for key, item in value.items()}
        return value

    return plain(dataclasses.asdict(config))


def config_to_yaml(config: WinnowConfig) -> str:
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)


def _build(cls: type, data: Any, where: str, problems: list[str]) -> Any:
    """Instantiate dataclass ``cls`` from ``data``, appending problems instead of raising."""
    if not isinstance(data, dict):
        problems.append(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
        return cls()
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in sorted(set(data) - known):
        problems.append(f"{where}{key}: unknown key (known: {', '.join(sorted(known))})")
    values = {}
    for name in known & set(data):
        values[name] = _coerce(hints[name], data[name], f"{where}{name}", problems)
    instance = cls(**{k: v for k, v in values.items() if v is not _INVALID})
    problems.extend(f"{where}{problem}" for problem in getattr(instance, "errors", list)())
    return instance


_INVALID = object()


def _coerce(hint: Any, value: Any, where: str, problems: list[str]) -> Any:
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where + ".", problems)
    if typing.get_origin(hint) is tuple:
        (item_type, _) = typing.get_args(hint)
        if not isinstance(value, (list, tuple)):
            problems.append(f"{where}: expected a list, got {value!r}")
            return _INVALID
        items = [_coerce(item_type, item, f"{where}[{i}]", problems)
                 for i, item in enumerate(value)]
        return _INVALID if _INVALID in items else tuple(items)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (bool, int, float, str) and type(value) is hint:
        return value
    problems.append(f"{where}: expected {getattr(hint, '__name__', hint)}, got {value!r}")
    return _INVALID


def config_reference() -> str:
    """The README's config reference: every section and field with its default and docstring,
    read from the dataclasses' source so the documentation cannot drift from the code."""
    lines = []
    for section in dataclasses.fields(WinnowConfig):
        section_cls = typing.get_type_hints(WinnowConfig)[section.name]
        docs = field_docstrings(section_cls)
        defaults = config_to_dict(section_cls())
        lines += [f"### `{section.name}`", "", "| key | default | meaning |", "|---|---|---|"]
        for name, default in defaults.items():
            meaning = docs.get(name) or (ENABLED_DOC if name == "enabled" else "")
            meaning = " ".join(meaning.split()).replace("|", "\\|")
            lines.append(f"| `{name}` | `{json.dumps(default)}` | {meaning} |")
        lines.append("")
    return "\n".join(lines)


def field_docstrings(cls: type) -> dict[str, str]:
    """Field name -> the string literal written under it in the class body."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    docs = {}
    for node, following in zip(body, body[1:], strict=False):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)):
            docs[node.target.id] = following.value.value
    return docs
