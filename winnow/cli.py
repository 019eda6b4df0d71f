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
import difflib
import logging
import sys
from importlib import metadata

from winnow.ablate import add_ablate_command
from winnow.pipeline.cli import add_curation_commands
from winnow.pipeline.quiet_logs import hide_beam_noise
from winnow.trainer.cli import add_training_commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="winnow",
        description="Curate raw text into a clean pretraining corpus, and pretrain encoders "
                    "on it.")
    parser.add_argument("--version", action="version",
                        version=f"winnow {metadata.version('winnow')}")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error instead of its one line (also "
                             "after the command)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_curation_commands(commands)
    add_training_commands(commands)
    add_ablate_command(commands)
    _mark_command_parsers(parser)
    return parser


def _mark_command_parsers(parser: argparse.ArgumentParser) -> None:
    """Give every (sub)command's parser itself as the ``command_parser`` default: the innermost
    one wins, so ``args.command_parser`` is the parser of the command that was given, whose
    usage and flags an error about its arguments names. (argparse lists subparsers only in its
    private ``_actions``.)"""
    parser.set_defaults(command_parser=parser)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command_parser in action.choices.values():
                _mark_command_parsers(command_parser)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # Before anything imports Beam: its import logs a BigQuery warning that means nothing here.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    if not getattr(args, "verbose", False):
        hide_beam_noise()
    # --debug after the command: no command defines it, so it lands among the extra arguments.
    args.debug = args.debug or "--debug" in extra
    extra = [arg for arg in extra if arg != "--debug"]
    refuse_unknown_arguments(args, extra)
    remote = remote_path_refused(args)
    if remote:
        print(remote, file=sys.stderr)
        return 2
    return args.run(args, extra)


# The path arguments that the training side reads or writes with plain local file calls
# (training runs and their checkpoints, model folders, YAML), by command and argparse dest.
# Every other path argument takes gs:// (curation goes through Beam's filesystems; shards and
# the rows evaluate and finetune read through schemas.storage). pretrain --shards is not here:
# it reads gs:// shards.
LOCAL_ONLY_PATHS = {
    "quality": ("output",),  # fastText saves to local files only
    "pretrain": ("output", "config", "shard_cache"),
    "export": ("run_dir", "output"),
    "evaluate": ("model",),
    "finetune": ("model", "output"),
    "ablate": ("output", "configs", "train_config", "tokenizer"),
}


def remote_path_refused(args: argparse.Namespace) -> str | None:
    """The one-line error for the first URL (gs://...) given where the command takes local
    paths only (``LOCAL_ONLY_PATHS``), or None. Refused before anything runs, instead of a
    "No such file or directory" part way."""
    from winnow.schemas.storage import is_remote

    for dest in LOCAL_ONLY_PATHS.get(args.command, ()):
        given = getattr(args, dest, None)
        for path in given if isinstance(given, list) else [given]:
            if isinstance(path, str) and is_remote(path):
                return (f"winnow {args.command}: {_argument_name(args, dest)} {path}: a local "
                        f"path only (copy it from or to Cloud Storage with 'gcloud storage cp "
                        f"-r'; see README, From laptop to cloud)")
    return None


def _argument_name(args: argparse.Namespace, dest: str) -> str:
    """How the command's usage names the argument stored in ``dest``: its flag, or its metavar."""
    for action in args.command_parser._actions:
        if action.dest == dest:
            return action.option_strings[0] if action.option_strings else action.metavar
    return dest


def refuse_unknown_arguments(args: argparse.Namespace, extra: list[str]) -> None:
    """Exit 2 (argparse's usage error) naming the arguments that are neither the command's nor,
    for commands that pass Beam's pipeline options on (curate, ablate), Beam's, each misspelt
    flag with the closest real one. With a runner that has a job server (Flink, Spark, ...), a
    flag close to no known one is left to that server, which may define more options."""
    if not extra:
        return
    command_parser = args.command_parser
    flags = ["--debug", *(flag for action in command_parser._actions
                          for flag in action.option_strings)]
    unknown, left_to_runner = extra, False
    if getattr(args, "passes_beam_options", False):
        from winnow.pipeline.beam_flags import read_beam_args

        beam = read_beam_args(extra)
        unknown, left_to_runner = beam.unknown, beam.job_server_runner
        flags += beam.flags
    suggestions = {arg: _closest_flag(arg, flags) for arg in unknown}
    if left_to_runner:  # only the flags that look misspelt
        unknown = [arg for arg in unknown if suggestions[arg]]
    if not unknown:
        return
    meant = [(arg.split("=", 1)[0], suggestions[arg]) for arg in unknown if suggestions[arg]]
    hint = ""
    if len(meant) == 1:
        hint = f" (did you mean {meant[0][1]}?)"
    elif meant:
        hint = f" (did you mean {', '.join(f'{flag} for {arg}' for arg, flag in meant)}?)"
    command_parser.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")


def _closest_flag(arg: str, flags: list[str]) -> str | None:
    """The real flag closest to a misspelt flag ``arg`` (``--key`` or ``--key=value``), if any
    is close (difflib's ratio of at least 0.6)."""
    if not arg.startswith("-"):
        return None
    close = difflib.get_close_matches(arg.split("=", 1)[0], flags, n=1)
    return close[0] if close else None
