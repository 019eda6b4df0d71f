"""The run configuration: one YAML file, one section per stage.

A config file names only what it changes; everything else keeps the defaults below (print them
with ``winnow curate --print-config``). Unknown keys, wrong types and invalid values are all
collected into one ``ConfigError`` before anything runs. Each stage's thresholds are defined next
to its rules in ``filters/`` (with a docstring per field); this module assembles them.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any

import yaml

from filters.boilerplate import BoilerplateConfig
from filters.dedup import ExactDedupConfig
from filters.heuristics import HeuristicsConfig
from filters.language import LanguageConfig
from filters.minhash import NearDedupConfig
from filters.normalize import NormalizeConfig
from filters.pairs import PairsConfig
from filters.pii import PiiConfig
from filters.quality import QualityConfig
from filters.sentences import SentencesConfig
from filters.tokenizer import TokenizerConfig
from schemas.typed_config import (
    ConfigError,
    build_config,
    reference_table,
    to_plain_dict,
)

ENABLED_DOC = "Run this stage; when false, documents pass through it untouched."
ALL_FIELDS = "*"
"""``input.keep_fields: ["*"]``: keep every field of the input records."""


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
    keep_fields: tuple[str, ...] = (ALL_FIELDS,)
    """The record's other fields (not the id and text fields) kept in the ``fields`` column of
    kept/ and removed/: ``["*"]`` every field, ``[]`` none, or a list of names (a listed field a
    record lacks is null)."""
    rename_fields: dict[str, str] = field(default_factory=dict)
    """Input field name -> its name in the ``fields`` column, e.g. ``{meta: crawl_meta}``.
    With ``keep_fields: ["*"]``, a renamed field replaces a record's field that already has
    the new name."""

    def errors(self) -> list[str]:
        problems = []
        if self.format not in ("auto", "jsonl", "parquet", "text"):
            problems.append(f"format must be auto, jsonl, parquet or text, got {self.format!r}")
        return problems + self._keep_fields_errors() + self._rename_fields_errors()

    @property
    def keeps_all_fields(self) -> bool:
        return self.keep_fields == (ALL_FIELDS,)

    def _column_clash(self, name: str) -> str | None:
        """Why ``name`` cannot be a field (it is the id or the text field), else None."""
        if name in (self.id_field, self.text_field):
            kind = "id" if name == self.id_field else "text"
            return f"{name!r} is the {kind} field, stored in its own column"
        return None

    def _keep_fields_errors(self) -> list[str]:
        if self.keeps_all_fields:
            return []
        problems = []
        if ALL_FIELDS in self.keep_fields:
            problems.append('keep_fields: "*" keeps every field and stands alone')
        if len(set(self.keep_fields)) < len(self.keep_fields):
            problems.append(f"keep_fields: names repeat in {list(self.keep_fields)}")
        problems += [f"keep_fields: {why}"
                     for why in map(self._column_clash, self.keep_fields) if why]
        return problems

    def _rename_fields_errors(self) -> list[str]:
        problems = []
        for old, new in self.rename_fields.items():
            if not isinstance(old, str) or not isinstance(new, str) or not new:
                problems.append(f"rename_fields: {old!r}: {new!r} must map a name to a "
                                "non-empty name")
            elif self._column_clash(old):
                problems.append(f"rename_fields: {self._column_clash(old)}")
            elif not self.keeps_all_fields and old not in self.keep_fields:
                problems.append(f"rename_fields: {old!r} is not in keep_fields")
            elif new in self.keep_fields and new not in self.rename_fields:
                problems.append(f"rename_fields: {old!r} would replace the kept field {new!r}")
        targets = list(self.rename_fields.values())
        if len(set(map(repr, targets))) < len(targets):
            problems.append(f"rename_fields: two fields get the same name in {targets}")
        return problems

    def kept_field_names(self) -> list[str]:
        """The names ``fields`` holds whatever the records hold (after renaming); empty when
        every field is kept (the records decide then)."""
        if self.keeps_all_fields:
            return []
        return [self.rename_fields.get(name, name) for name in self.keep_fields]


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
    boilerplate: BoilerplateConfig = field(default_factory=BoilerplateConfig)
    pii: PiiConfig = field(default_factory=PiiConfig)
    sentences: SentencesConfig = field(default_factory=SentencesConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    pairs: PairsConfig = field(default_factory=PairsConfig)
    shards: ShardsConfig = field(default_factory=ShardsConfig)
    output: OutputConfig = field(default_factory=OutputConfig)


MOVED_KEYS = {
    ("exact_dedup", "boilerplate_lines"): "boilerplate.enabled",
    ("exact_dedup", "boilerplate_min_documents"): "boilerplate.min_documents",
    ("exact_dedup", "boilerplate_min_chars"): "boilerplate.min_chars",
}
"""Keys of earlier releases and where they live now: named in the error instead of "unknown"."""


def config_from_dict(data: dict[str, Any] | None) -> WinnowConfig:
    """Build a config from a (partial) mapping; raise ConfigError listing every problem."""
    moved = [f"{section}.{key}: moved to {target}"
             for (section, key), target in MOVED_KEYS.items()
             if isinstance((data or {}).get(section), dict) and key in data[section]]
    if moved:
        data = {section: ({k: v for k, v in values.items() if (section, k) not in MOVED_KEYS}
                          if isinstance(values, dict) else values)
                for section, values in data.items()}
    try:
        config = build_config(WinnowConfig, data)
    except ConfigError as error:
        raise ConfigError(moved + error.problems) from None
    if moved:
        raise ConfigError(moved)
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
            raise ConfigError([f"{path}: not valid YAML: {error}"]) from error
    if data is not None and not isinstance(data, dict):
        raise ConfigError([f"{path}: the top level must be a mapping of sections"])
    try:
        return config_from_dict(data)
    except ConfigError as error:
        raise ConfigError([f"{path}: {problem}" for problem in error.problems]) from None


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain dict (tuples as lists) of a config, ready for YAML or JSON."""
    return to_plain_dict(config)


def config_to_yaml(config: WinnowConfig) -> str:
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)


def config_reference() -> str:
    """The README's config reference: every section and field with its default and docstring,
    read from the dataclasses' source so the documentation cannot drift from the code."""
    lines = []
    for section in dataclasses.fields(WinnowConfig):
        section_cls = typing.get_type_hints(WinnowConfig)[section.name]
        lines += [f"### `{section.name}`", ""]
        lines += reference_table(section_cls, {"enabled": ENABLED_DOC}) + [""]
    return "\n".join(lines)
