"""The training side of the ``winnow`` command: ``pretrain``, ``export``, ``evaluate`` and
``finetune``.

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
    """Add pretrain, export, evaluate and finetune to the ``winnow`` command's parser."""
    _add_pretrain(commands)
    _add_export(commands)
    _add_evaluate(commands)
    _add_finetune(commands)


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
    pretrain.add_argument("--output", metavar="RUN",
                          help="run folder for config.yaml, metrics.jsonl and checkpoints/ "
                               "(required, except with --print-config)")
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
    pretrain.add_argument("--shard-cache", metavar="DIR",
                          help="read the shards through a local cache in DIR: fetched when "
                               "first needed and prefetched in the order training reads "
                               "them, each file's sha256 checked against the manifest, shared "
                               "by the processes of the machine (default for gs:// shards: "
                               "~/.cache/winnow/shards; local shards are read in place "
                               "without it)")
    pretrain.add_argument("--shard-cache-limit", metavar="SIZE",
                          help="most bytes of shard files the cache keeps, e.g. 200G (least "
                               "recently used ones no process reads are deleted to make "
                               "room); default no limit")
    pretrain.add_argument("--print-config", action="store_true",
                          help="print the config the run would train with as YAML and exit: "
                               "--config, --preset and --max-steps applied, unset fields "
                               "derived for this machine (with --resume: the recorded one); "
                               "needs no --output")
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


FINETUNE_EPILOG = """\
Rows: JSONL, Parquet, CSV or TSV (gz, zst, bz2, xz too). A row without usable text or label is
counted by reason in results.json, never fatal. Without --validation, a stratified
--validation-fraction of the training rows (seeded by --split-seed) is held out. Each seed
0..N-1 fine-tunes from the same model; DIR/results.json holds every seed's validation and test
accuracy and macro-F1, their mean and std, the label map, the data counts and the config.
Needs transformers: pip install 'winnow[train]'."""


def _add_finetune(subparsers) -> argparse.ArgumentParser:
    finetune = subparsers.add_parser(
        "finetune", help="fine-tune a pretrained encoder on a labelled task, over seeds",
        description="Sequence classification on [CLS] with Hugging Face transformers, from a "
                    "winnow export folder or a winnow pretrain run folder.",
        epilog=FINETUNE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    finetune.add_argument("model", metavar="MODEL",
                          help="winnow export folder, or winnow pretrain run folder (its "
                               "latest checkpoint is exported first)")
    finetune.add_argument("--train", nargs="+", required=True, metavar="FILE",
                          help="training rows: files, folders or globs")
    finetune.add_argument("--validation", nargs="+", metavar="FILE",
                          help="validation rows (default: a split of --train)")
    finetune.add_argument("--test", nargs="+", metavar="FILE", help="test rows")
    finetune.add_argument("--output", required=True, metavar="DIR",
                          help="folder for results.json (must be empty or absent)")
    finetune.add_argument("--overwrite", action="store_true",
                          help="write into a non-empty --output, replacing its results.json")
    finetune.add_argument("--text-field", default="text", metavar="NAME",
                          help="field of the text (default text)")
    finetune.add_argument("--text-pair-field", metavar="NAME",
                          help="field of the second text, for pair tasks")
    finetune.add_argument("--label-field", default="label", metavar="NAME",
                          help="field of the label, a string or an integer (default label)")
    finetune.add_argument("--init", choices=("pretrained", "random"), default="pretrained",
                          help="random: the same architecture untrained, the baseline")
    finetune.add_argument("--seeds", type=int, default=3, metavar="N",
                          help="fine-tune with seeds 0..N-1 (default 3)")
    finetune.add_argument("--epochs", type=int, default=3, metavar="N",
                          help="epochs at most (default 3)")
    finetune.add_argument("--lr", type=float, metavar="LR",
                          help="peak learning rate (default 5e-5 pretrained, 1e-4 random)")
    finetune.add_argument("--batch-size", type=int, default=32, metavar="N",
                          help="examples per step (default 32)")
    finetune.add_argument("--warmup-fraction", type=float, default=0.1, metavar="F",
                          help="fraction of steps of linear warmup, then linear decay "
                               "(default 0.1)")
    finetune.add_argument("--patience", type=int, default=2, metavar="N",
                          help="stop after N epochs without a better validation accuracy "
                               "(default 2)")
    finetune.add_argument("--validation-fraction", type=float, default=0.1, metavar="F",
                          help="without --validation: the training fraction held out "
                               "(default 0.1)")
    finetune.add_argument("--split-seed", type=int, default=0, metavar="N",
                          help="seed of that split (default 0)")
    finetune.add_argument("--max-seq-len", type=int, metavar="N",
                          help="longest input in tokens (default: the model's)")
    finetune.set_defaults(run=run_finetune)
    return finetune


def _fail(args, error: Exception) -> int:
    """One line on stderr, exit code 2; with --debug the traceback of the error first."""
    command = args.command
    if getattr(args, "debug", False) and error.__traceback__ is not None:
        import traceback

        traceback.print_exception(error)
    head, *rest = [line.strip() for line in str(error).splitlines() if line.strip()] or [""]
    print(f"winnow {command}: {head} {'; '.join(rest)}".rstrip(), file=sys.stderr)
    return 2


def run_pretrain(args, _extra: list[str]) -> int:
    import yaml

    from winnow.trainer.checkpoints import PretrainError
    from winnow.trainer.config import ConfigError, config_to_dict, load_config

    try:
        if args.output is None and (args.resume or not args.print_config):
            return _fail(args, ValueError("--output RUN is required to train or resume "
                                                "(only --print-config goes without it)"))
        from winnow.trainer.train import pretrain, recorded_config, run_config

        if args.print_config:  # the config setup would train with
            import torch

            given = (load_config(args.config, args.preset)
                     if not args.resume or args.config or args.preset else None)
            config = recorded_config(args.output, given) if args.resume else given
            config = run_config(config, resumed=args.resume, max_steps=args.max_steps,
                                device_type="cuda" if torch.cuda.is_available() else "cpu")
            sys.stdout.write(yaml.safe_dump(config_to_dict(config), sort_keys=False))
            return 0

        config = None
        if not args.resume or args.config or args.preset:
            config = load_config(args.config, args.preset)
        step = pretrain(args.shards, args.output, config, resume=args.resume,
                        max_steps=args.max_steps, stop_after=args.stop_after,
                        allow_changed_shards=args.allow_changed_shards,
                        cache=_cache_options(args))
    except (ConfigError, PretrainError, OSError) as error:  # OSError: a full disk, say
        return _fail(args, error)
    print(f"{args.output}: step {step}", file=sys.stderr)
    return 0


def _cache_options(args):
    """The shard cache ``--shard-cache``/``--shard-cache-limit`` ask for; None: none asked
    (gs:// shards still get the default one)."""
    from winnow.trainer.checkpoints import PretrainError

    if args.shard_cache is None and args.shard_cache_limit is None:
        return None
    from winnow.schemas.shard_cache import CacheOptions, parse_size

    try:
        limit = None if args.shard_cache_limit is None else parse_size(args.shard_cache_limit)
    except ValueError as error:
        raise PretrainError(f"--shard-cache-limit: {error}") from None
    return CacheOptions(root=args.shard_cache, limit_bytes=limit)


def run_export(args, _extra: list[str]) -> int:
    from winnow.trainer.checkpoints import PretrainError
    from winnow.trainer.train import export

    try:
        written = export(args.run_dir, args.output, overwrite=args.overwrite)
    except (PretrainError, OSError) as error:
        return _fail(args, error)
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
        return _fail(args, error)
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0


def run_finetune(args, _extra: list[str]) -> int:
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as error:
        return _fail(args, ImportError(f"needs {error.name}: pip install 'winnow[train]'"))
    from winnow.trainer.finetune import FinetuneConfig, FinetuneError, finetune
    from winnow.trainer.task import TaskFields

    try:
        config = FinetuneConfig(
            fields=TaskFields(args.text_field, args.text_pair_field, args.label_field),
            init=args.init, seeds=args.seeds, epochs=args.epochs, lr=args.lr,
            batch_size=args.batch_size, warmup_fraction=args.warmup_fraction,
            patience=args.patience, validation_fraction=args.validation_fraction,
            split_seed=args.split_seed, max_seq_len=args.max_seq_len)
        results = finetune(args.model, args.train, args.output, config,
                           validation=args.validation, test=args.test,
                           overwrite=args.overwrite)
    except (FinetuneError, OSError) as error:
        return _fail(args, error)
    for split, summary in results["summary"].items():
        if summary is not None:
            print(f"{split}: accuracy {summary['accuracy']['mean']:.4f} "
                  f"± {summary['accuracy']['std']:.4f}, macro-F1 "
                  f"{summary['macro_f1']['mean']:.4f} ± {summary['macro_f1']['std']:.4f} "
                  f"over {len(results['seeds'])} seeds")
    return 0
