"""The training side of the ``winnow`` command: ``pretrain``, ``export`` and ``evaluate``.

``winnow/cli.py`` builds the command from this module and from ``pipeline/cli.py``. Nothing
heavy is imported here (torch is imported inside the run functions), so ``winnow --help`` works
without torch, and torchrun starts one process per GPU through the same front door::

    torchrun --nproc-per-node 8 -m winnow pretrain --shards DIR --output RUN
"""

from __future__ import annotations

import argparse
import sys

PRETRAIN_EPILOG = """\
Several GPUs: torchrun --nproc-per-node N -m winnow pretrain ... (one process per GPU,
DDP; batch_size stays the global batch). RUN holds config.yaml, metrics.jsonl, tensorboard/
(when installed) and checkpoints/ (step-NNNNNN.pt, its .sha256 and a `latest` pointer).
A checkpoint that fails its checksum is refused, naming the newest valid one to resume from
instead; a torn metrics.jsonl line (a full disk) is dropped on --resume."""


def add_training_commands(commands) -> None:
    """Add pretrain, export and evaluate to the ``winnow`` command's parser."""
    _add_pretrain(commands)
    _add_export(commands)
    _add_evaluate(commands)


def _add_pretrain(subparsers) -> argparse.ArgumentParser:
    pretrain = subparsers.add_parser(
        "pretrain", help="pretrain a BERT/ALBERT encoder on token shards",
        description="Verify the shards, then train (or resume) a masked-LM + sentence-order\n"
                    "(or next-sentence) encoder, writing metrics and checkpoints into --output.",
        epilog=PRETRAIN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    pretrain.add_argument("--shards", metavar="DIR",
                          help="shard folder (holds manifest.json), or the run folder "
                               "holding it as shards/; required for a new run, defaults to "
                               "the recorded one on --resume")
    pretrain.add_argument("--output", required=True, metavar="RUN",
                          help="run folder for config.yaml, metrics.jsonl and checkpoints/")
    pretrain.add_argument("--config", metavar="FILE",
                          help="YAML training config naming only what differs from the "
                               "defaults (see the README's training config reference)")
    pretrain.add_argument("--preset", metavar="NAME",
                          help="model size: tiny, mini, small, medium, base or large "
                               "(replaces model.preset of --config; default base)")
    pretrain.add_argument("--max-steps", type=int, metavar="N",
                          help="total optimizer steps, the length of the learning-rate "
                               "schedule (replaces max_steps of the config)")
    pretrain.add_argument("--stop-after", type=int, metavar="N",
                          help="stop once N optimizer steps are done in total (an absolute "
                               "step, counting those before a resume) and write a checkpoint; "
                               "the schedule still runs to --max-steps")
    pretrain.add_argument("--resume", action="store_true",
                          help="continue the run in --output from its latest checkpoint, with "
                               "its recorded config and shards (they must still match)")
    pretrain.add_argument("--allow-changed-shards", action="store_true",
                          help="with --resume: continue even though the shards' manifest "
                               "differs from the one the checkpoint recorded (re-curated or "
                               "other data of the same tokenizer and sequence length); "
                               "refused without this flag")
    pretrain.add_argument("--print-config", action="store_true",
                          help="print the effective training config as YAML and exit")
    pretrain.set_defaults(run=run_pretrain)
    return pretrain


def _add_export(subparsers) -> argparse.ArgumentParser:
    export = subparsers.add_parser(
        "export", help="export a pretraining run as a Hugging Face model folder",
        description="Write the latest checkpoint of RUN as a transformers folder (config.json, "
                    "model.safetensors, the SentencePiece tokenizer), loadable with "
                    "AutoModelForPreTraining and AutoTokenizer.")
    export.add_argument("run_dir", metavar="RUN", help="run folder written by winnow pretrain")
    export.add_argument("--output", required=True, metavar="DIR",
                        help="folder to write the Hugging Face model into (written beside it "
                             "and renamed into place; must be empty or absent)")
    export.add_argument("--overwrite", action="store_true",
                        help="replace a non-empty --output (the old folder stays whole until "
                             "the new one is complete)")
    export.set_defaults(run=run_export)
    return export


EVALUATE_EPILOG = """\
The text takes the shards' path: sentences, the model's tokenizer, SOP/NSP pairs of the model's
max_seq_len, masks as in pretraining, fixed by --seed (independent of --batch-size).
mlm_bits_per_byte = summed masked-token cross-entropy / (ln 2 * UTF-8 bytes of the masked
pieces): comparable across tokenizers. --json prints every figure and count (see the README)."""


def _add_evaluate(subparsers) -> argparse.ArgumentParser:
    evaluate = subparsers.add_parser(
        "evaluate", help="held-out masked-LM and SOP/NSP loss and accuracy on any text",
        description="Evaluate a pretrained encoder on text files: masked-LM loss and accuracy "
                    "per token and per byte, and SOP/NSP loss and accuracy.",
        epilog=EVALUATE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    evaluate.add_argument("model", metavar="MODEL",
                          help="run folder written by winnow pretrain (its latest checkpoint), "
                               "or a folder written by winnow export")
    evaluate.add_argument("--text", required=True, nargs="+", metavar="FILE",
                          help="files, folders or globs: JSONL, Parquet, CSV/TSV or plain text "
                               "(gz, zst, bz2, xz)")
    evaluate.add_argument("--json", action="store_true",
                          help="print the figures and counts as one JSON object")
    evaluate.add_argument("--seed", type=int, default=0, metavar="N",
                          help="seeds the sentence pairing and the masks (default 0)")
    evaluate.add_argument("--text-field", default="text", metavar="NAME",
                          help="the field holding a record's text (default text; plain text "
                               "files are one document each)")
    evaluate.add_argument("--batch-size", type=int, metavar="N",
                          help="examples per forward pass (default 64); the figures do not "
                               "depend on it")
    evaluate.add_argument("--max-examples", type=int, metavar="N",
                          help="evaluate the first N examples only (in input order)")
    evaluate.set_defaults(run=run_evaluate)
    return evaluate


def _fail(command: str, error: Exception) -> int:
    """One line on stderr, exit code 2."""
    head, *rest = [line.strip() for line in str(error).splitlines() if line.strip()] or [""]
    print(f"winnow {command}: {head} {'; '.join(rest)}".rstrip(), file=sys.stderr)
    return 2


def run_pretrain(args, _extra: list[str]) -> int:
    import yaml

    from winnow.trainer.checkpoints import PretrainError
    from winnow.trainer.config import ConfigError, config_to_dict, load_config
    from winnow.trainer.train import pretrain

    try:
        config = None
        if not args.resume or args.config or args.preset:
            config = load_config(args.config, args.preset)
        if args.print_config:
            sys.stdout.write(yaml.safe_dump(config_to_dict(config or load_config(None)),
                                            sort_keys=False))
            return 0
        step = pretrain(args.shards, args.output, config, resume=args.resume,
                        max_steps=args.max_steps, stop_after=args.stop_after,
                        allow_changed_shards=args.allow_changed_shards)
    except (ConfigError, PretrainError, OSError) as error:  # OSError: a full disk, say
        return _fail("pretrain", error)
    print(f"{args.output}: step {step}", file=sys.stderr)
    return 0


def run_export(args, _extra: list[str]) -> int:
    from winnow.trainer.checkpoints import PretrainError
    from winnow.trainer.train import export

    try:
        written = export(args.run_dir, args.output, overwrite=args.overwrite)
    except (PretrainError, OSError) as error:
        return _fail("export", error)
    print(f"wrote {written}")
    return 0


def run_evaluate(args, _extra: list[str]) -> int:
    import json

    import torch

    from winnow.trainer.checkpoints import PretrainError
    from winnow.trainer.evaluate import (
        DEFAULT_BATCH_SIZE,
        EvaluateError,
        evaluate_text,
        format_table,
    )
    from winnow.trainer.pretrained import load_pretrained

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        pretrained = load_pretrained(args.model, device)
        result = evaluate_text(pretrained, args.text, seed=args.seed,
                               text_field=args.text_field,
                               batch_size=(DEFAULT_BATCH_SIZE if args.batch_size is None
                                           else args.batch_size),
                               max_examples=args.max_examples)
    except (PretrainError, EvaluateError, OSError) as error:
        return _fail("evaluate", error)
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0
