"""The curation config: one YAML file, one section per stage, assembled here from the stage list.

A config file names only what it changes; everything else keeps the defaults (print them with
``winnow curate --print-config``). Unknown keys, wrong types and invalid values are all
collected into one ``ConfigError`` before anything runs. Each section's fields are defined next
to the code that uses them, with a docstring per field: the stages' in ``filters/`` (through
``pipeline.stage_list``), reading in ``pipeline.readers``, the run folder's files in
``pipeline.writers``, the shards in ``filters`` and ``pipeline.shards``.

``WinnowConfig``'s sections, in order: ``input``, one per curation stage (``STAGES``), then
``sentences``, ``tokenizer``, ``pairs``, ``shards`` and ``output``.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import yaml

from winnow.filters.pairs import PairsConfig
from winnow.filters.sentences import SentencesConfig
from winnow.filters.tokenizer import TokenizerConfig
from winnow.pipeline.readers import InputConfig
from winnow.pipeline.shards import ShardsConfig
from winnow.pipeline.stage_list import STAGES
from winnow.pipeline.writers import OutputConfig
from winnow.schemas.typed_config import ConfigError, build_config, reference_table, to_plain_dict

ENABLED_DOC = "Run this stage; when false, documents pass through it untouched."


def _section(name: str, config_type: type) -> tuple[str, type, dataclasses.Field]:
    return name, config_type, dataclasses.field(default_factory=config_type)


WinnowConfig = dataclasses.make_dataclass(
    "WinnowConfig",
    [_section("input", InputConfig),
     *(_section(stage.name, stage.config_type) for stage in STAGES),
     _section("sentences", SentencesConfig),
     _section("tokenizer", TokenizerConfig),
     _section("pairs", PairsConfig),
     _section("shards", ShardsConfig),
     _section("output", OutputConfig)],
    frozen=True)
WinnowConfig.__module__ = __name__  # so that Beam pickles it by reference
WinnowConfig.__doc__ = "The whole curation config: one frozen section per field."


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

    try:
        with FileSystems.open(path) as handle:
            text = handle.read().decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:  # BeamIOError is an OSError
        raise ConfigError([f"{path}: cannot read the config: {error}"]) from None
    try:
        data = yaml.safe_load(text)
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
