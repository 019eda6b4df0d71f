"""The ``winnow`` command, the product's one front door.

The parser is built from the two sides of the product: ``pipeline/cli.py`` adds the curation
commands (curate, report, quality, tokenizer, shards) and ``trainer/cli.py`` the training
commands (pretrain, export, evaluate, finetune); ``winnow/ablate.py`` adds ablate, which
drives both. Neither side imports the other, and neither imports Beam or torch
until its command runs. ``python -m winnow`` and torchrun (``torchrun -m winnow pretrain ...``)
come in here too.
"""

from __future__ import annotations

import argparse
import logging

from winnow.ablate import add_ablate_command
from winnow.pipeline.cli import add_curation_commands
from winnow.trainer.cli import add_training_commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="winnow",
        description="Curate raw text into a clean pretraining corpus, and pretrain encoders "
                    "on it.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_curation_commands(commands)
    add_training_commands(commands)
    add_ablate_command(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # Only curate takes options that are not its own: they are Beam's pipeline options.
    if extra and not getattr(args, "passes_beam_options", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    return args.run(args, extra)
