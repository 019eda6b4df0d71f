"""``winnow ablate``: does this curation pay off? Curated against raw at equal compute.

Each *arm* is a curation config. Every arm curates the same inputs with one shared tokenizer,
pretrains the same model for the same number of steps (so the same tokens of compute, batch x
max_seq_len a step) with the same seed, and is evaluated on held-out text with ``winnow
evaluate`` at a few points along the way, then fine-tuned on a labelled task with ``winnow
finetune`` when one is given. The untrained model is fine-tuned too: the baseline every arm must
beat. An arm whose shards hold fewer tokens than the budget repeats them (its epochs are shown).

Arms: each ``--configs`` file (named by its file stem; ``default`` when none is given), ``raw``
(every curation stage of the first config off: the same reading, sentences, pairs and shards,
so only the curation differs), and with ``--per-stage`` the first config with one stage off,
``no_<stage>``, for each stage it runs.

Every step runs the real command in a child process (``python -m winnow ...``), the one a user
would run, logged to ``DIR/logs/``; ablate itself only plans, orders the steps and collects
their outputs. Each step leaves a file that says it finished, so a stopped ablation resumes
where it stopped and a finished arm is never redone. The layout::

    DIR/plan.json                 the settings shared by every arm (a rerun must match them)
    DIR/tokenizer/spm.model       the shared SentencePiece model (trained on the raw inputs)
    DIR/train.yaml                the training config every arm uses
    DIR/arms/NAME/curate.yaml     the arm's curation config
    DIR/arms/NAME/curated/        its ``winnow curate`` run folder; curation.json: its figures
    DIR/arms/NAME/pretrain/       its ``winnow pretrain`` run folder
    DIR/arms/NAME/eval/step-N.json  ``winnow evaluate --json`` at step N
    DIR/arms/NAME/finetune/results.json   ``winnow finetune`` over seeds
    DIR/arms/NAME/same_training_data.json  {"arm": OTHER}: this arm's shards hold the same
                                  training data as OTHER's (a stage that removed nothing), so
                                  OTHER's model and figures stand for it; it is not retrained
    DIR/baseline/finetune/results.json    the untrained model on the same task
    DIR/results.json, results.md, report.html   every figure, a table, plots

Here ablate sits beside the front door (``winnow/``) rather than in ``pipeline/`` or
``trainer/``, because it drives both sides.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ABLATE_EPILOG = """\
Example (CPU, minutes): winnow ablate corpus.jsonl.gz --output abl --raw --preset tiny
    --tokens 2000000 --eval-text heldout.jsonl --task train.jsonl --task-test test.jsonl
Options that are neither ablate's nor curate's (e.g. --direct_num_workers 2) go to every
`winnow curate` as Beam options. Rerun the same command to resume: finished steps are kept;
a rerun with other shared settings is refused (use a new --output, or --overwrite)."""

PLAN_FILE = "plan.json"
LOCK_FILE = ".lock"
SAME_DATA_FILE = "same_training_data.json"
"""In an arm folder: the arm whose figures this arm takes (the same training data)."""
PLAN_FORMAT = 1


class AblateError(Exception):
    """A problem that ends the ablation, in one line."""


class StepFailed(AblateError):
    """A child command failed; the arm stops there, the others go on."""


# --- the command line ----------------------------------------------------------------------------

def add_ablate_command(commands) -> argparse.ArgumentParser:
    ablate = commands.add_parser(
        "ablate", help="compare curation configs (and raw data) by the models they train",
        description="Curate the inputs once per arm with a shared tokenizer, pretrain the same "
                    "model on each arm for the same tokens, evaluate on held-out text and, "
                    "with --task, fine-tune on a labelled task; a table and an HTML report.",
        epilog=ABLATE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ablate.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="files, folders or globs, as for winnow curate")
    ablate.add_argument("--output", required=True, metavar="DIR",
                        help="folder of the ablation (rerun with the same DIR to resume)")
    ablate.add_argument("--configs", nargs="+", metavar="FILE", default=[],
                        help="curation configs, one arm each, named by file stem (default: one "
                             "arm, 'default', with the default config)")
    ablate.add_argument("--raw", action="store_true",
                        help="add the arm 'raw': the first config with every stage off")
    ablate.add_argument("--per-stage", action="store_true",
                        help="add one arm per stage the first config runs, with that stage off "
                             "(no_<stage>)")
    ablate.add_argument("--tokens", required=True, type=int, metavar="N",
                        help="training budget of every arm in tokens (sequence positions: "
                             "steps x batch_size x max_seq_len)")
    ablate.add_argument("--preset", default="tiny", metavar="NAME",
                        help="model size: tiny, mini, small, medium, base or large "
                             "(default tiny)")
    ablate.add_argument("--train-config", metavar="FILE",
                        help="training config YAML for every arm (as winnow pretrain --config; "
                             "its max_steps is set from --tokens)")
    ablate.add_argument("--tokenizer", metavar="MODEL",
                        help="a SentencePiece model to share (default: trained on the raw "
                             "inputs with the first config's tokenizer settings)")
    ablate.add_argument("--eval-text", required=True, nargs="+", metavar="FILE",
                        help="held-out text in no arm's inputs (formats of winnow evaluate)")
    ablate.add_argument("--eval-text-field", default="text", metavar="NAME",
                        help="field of the held-out text (default text)")
    ablate.add_argument("--eval-points", type=int, default=4, metavar="K",
                        help="evaluate at K evenly spaced steps, the last one included "
                             "(default 4)")
    ablate.add_argument("--eval-max-examples", type=int, default=2000, metavar="N",
                        help="held-out examples per evaluation, the first N (default 2000)")
    ablate.add_argument("--task", nargs="+", metavar="FILE",
                        help="labelled training rows for winnow finetune")
    ablate.add_argument("--task-test", nargs="+", metavar="FILE",
                        help="labelled test rows (needs --task)")
    ablate.add_argument("--task-seeds", type=int, default=3, metavar="N",
                        help="fine-tuning seeds per arm (default 3)")
    ablate.add_argument("--task-lr", type=float, metavar="LR",
                        help="fine-tuning peak learning rate (default: winnow finetune's)")
    ablate.add_argument("--task-epochs", type=int, metavar="N",
                        help="fine-tuning epochs at most (default: winnow finetune's)")
    ablate.add_argument("--task-max-seq-len", type=int, metavar="N",
                        help="fine-tuning input length in tokens (default: the model's)")
    ablate.add_argument("--task-text-field", default="text", metavar="NAME",
                        help="field of the task's text (default text)")
    ablate.add_argument("--task-label-field", default="label", metavar="NAME",
                        help="field of the task's label (default label)")
    ablate.add_argument("--overwrite", action="store_true",
                        help="start over in a DIR that holds an ablation with other settings")
    ablate.set_defaults(run=run_ablate, passes_beam_options=True)
    return ablate


def run_ablate(args, beam_args: list[str]) -> int:
    try:
        check_training_extra(needs_transformers=bool(args.task))
        plan = plan_from_args(args, beam_args)
        failed = Ablation(plan, Path(args.output)).run(overwrite=args.overwrite)
    except AblateError as error:
        if getattr(args, "debug", False):
            import traceback

            traceback.print_exc()
        print(f"winnow ablate: {error}", file=sys.stderr)
        return 2
    return 1 if failed else 0


def check_training_extra(needs_transformers: bool) -> None:
    """Ablate trains: without the train extra, say so in one line before anything runs."""
    for module in ("torch", "transformers") if needs_transformers else ("torch",):
        try:
            __import__(module)
        except ImportError:
            raise AblateError(f"needs {module}, which is not installed: pip install "
                              "'winnow[train]' (from a checkout: pip install -e '.[train]')"
                              ) from None


# --- the plan ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Arm:
    name: str
    """Folder name under DIR/arms/ and row of the table."""
    description: str
    """What the arm is, for the table: its config file, or which stage is off."""
    curation: dict[str, Any]
    """The curation config mapping (partial, as in a YAML file), before the shared tokenizer
    is set in it."""


@dataclass(frozen=True)
class Task:
    train: list[str]
    test: list[str]
    seeds: int
    lr: float | None
    epochs: int | None
    max_seq_len: int | None
    text_field: str
    label_field: str


@dataclass(frozen=True)
class Plan:
    """Everything an ablation does. ``shared()`` must match between a run and its resume;
    arms may be added."""

    inputs: list[str]
    arms: list[Arm]
    preset: str
    tokens: int
    train_config: dict[str, Any]
    batch_size: int
    max_seq_len: int
    steps: int
    eval_steps: list[int]
    eval_text: list[str]
    eval_text_field: str
    eval_max_examples: int
    tokenizer_model: str | None
    tokenizer_settings: dict[str, Any]
    task: Task | None
    beam_args: list[str] = field(default_factory=list)

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.max_seq_len

    def shared(self) -> dict[str, Any]:
        """The settings every arm's figures depend on (not the arms, not Beam's options)."""
        shared = dataclasses.asdict(self)
        del shared["arms"], shared["beam_args"]
        return {"format": PLAN_FORMAT, **shared}


def plan_from_args(args, beam_args: list[str]) -> Plan:
    """The plan of the command line; AblateError names every problem found."""
    if args.tokens < 1 or args.eval_points < 1 or args.eval_max_examples < 1:
        raise AblateError("--tokens, --eval-points and --eval-max-examples must be at least 1")
    if bool(args.task) != bool(args.task_test):
        raise AblateError("--task and --task-test go together")
    arms = plan_arms(args.configs, raw=args.raw, per_stage=args.per_stage)
    base = curation_config(arms[0].curation, arms[0].name)
    lengths = {arm.name: curation_config(arm.curation, arm.name).pairs.max_seq_len
               for arm in arms}
    if len(set(lengths.values())) > 1:
        raise AblateError(f"the arms' pairs.max_seq_len differ ({lengths}): equal tokens "
                          "would not be equal compute; give every config the same value")
    train_config = read_yaml(args.train_config) if args.train_config else {}
    batch_size = train_batch_size(train_config, args.preset)
    max_seq_len = base.pairs.max_seq_len
    steps = math.ceil(args.tokens / (batch_size * max_seq_len))
    resolved_train_config(train_config, args.preset, max_steps=steps)  # refused before any step
    task = None
    if args.task:
        task = Task(absolute(args.task), absolute(args.task_test), args.task_seeds, args.task_lr,
                    args.task_epochs, args.task_max_seq_len, args.task_text_field,
                    args.task_label_field)
    tokenizer_settings = {key: value for key, value
                          in dataclasses.asdict(base.tokenizer).items() if key != "model"}
    return Plan(inputs=absolute(args.inputs), arms=arms, preset=args.preset, tokens=args.tokens,
                train_config=train_config, batch_size=batch_size, max_seq_len=max_seq_len,
                steps=steps, eval_steps=eval_steps(steps, args.eval_points),
                eval_text=absolute(args.eval_text), eval_text_field=args.eval_text_field,
                eval_max_examples=args.eval_max_examples,
                tokenizer_model=absolute([args.tokenizer])[0] if args.tokenizer else None,
                tokenizer_settings=tokenizer_settings, task=task, beam_args=beam_args)


def plan_arms(configs: list[str], raw: bool, per_stage: bool) -> list[Arm]:
    """The arms, in table order: the configs, then raw, then one per stage turned off."""
    from winnow.pipeline.stage_list import STAGES

    arms = [Arm(Path(path).stem, f"config {path}", read_yaml(path)) for path in configs]
    if not arms:
        arms = [Arm("default", "the default config", {})]
    names = [arm.name for arm in arms]
    if len(set(names)) < len(names):
        raise AblateError(f"two configs share a file stem ({', '.join(names)}): arms are named "
                          "by it; rename one")
    base = arms[0]
    base_config = curation_config(base.curation, base.name)
    running = [stage.name for stage in STAGES if stage.enabled(base_config)]
    if raw:
        arms.append(Arm("raw", f"{base.name} with every stage off",
                        stages_off(base.curation, [stage.name for stage in STAGES])))
    if per_stage:
        arms += [Arm(f"no_{name}", f"{base.name} without {name}",
                     stages_off(base.curation, [name])) for name in running]
    return arms


def stages_off(curation: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """A copy of the config mapping with the named stages' ``enabled`` false."""
    config = json.loads(json.dumps(curation))
    for name in names:
        section = config.get(name) if isinstance(config.get(name), dict) else {}
        config[name] = {**section, "enabled": False}
    return config


def curation_config(mapping: dict[str, Any], name: str):
    """The arm's WinnowConfig (validated), or AblateError with every problem."""
    from winnow.pipeline.config import config_from_dict
    from winnow.schemas.typed_config import ConfigError

    try:
        return config_from_dict(mapping)
    except ConfigError as error:
        raise AblateError(f"arm {name}: {'; '.join(error.problems)}") from None


def train_batch_size(train_config: dict[str, Any], preset: str) -> int:
    """The global batch every arm trains with: the config's, or the one ``winnow pretrain``
    derives for the preset on this machine's device (``trainer.config.resolved_config``)."""
    return resolved_train_config(train_config, preset, max_steps=None).batch_size


def resolved_train_config(train_config: dict[str, Any], preset: str, max_steps: int | None):
    """The arms' TrainConfig with its unset fields derived, as pretrain will; AblateError
    naming every problem (a warmup longer than the run, say)."""
    import torch

    from winnow.trainer.config import ConfigError, config_from_dict, resolved_config

    model = train_config.get("model") if isinstance(train_config.get("model"), dict) else {}
    device_type = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        config = config_from_dict({**train_config, "model": {**model, "preset": preset}})
        return resolved_config(config, max_steps=max_steps, device_type=device_type)
    except ConfigError as error:
        raise AblateError(f"--train-config: {'; '.join(error.problems)}") from None


def eval_steps(steps: int, points: int) -> list[int]:
    """K evenly spaced steps in (0, steps], the last one ``steps`` (fewer when steps < K)."""
    return sorted({max(1, round(steps * k / points)) for k in range(1, points + 1)})


def read_yaml(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
    except (OSError, yaml.YAMLError) as error:
        raise AblateError(f"{path}: cannot be read as YAML: {error}") from None
    if not isinstance(data, dict):
        raise AblateError(f"{path}: the top level must be a mapping")
    return data


def absolute(paths: list[str]) -> list[str]:
    """Local paths made absolute (the steps run with other working folders in mind); URLs such
    as gs://... as given."""
    return [path if "://" in path else os.path.abspath(path) for path in paths]


# --- running it ----------------------------------------------------------------------------------

class Ablation:
    """Runs a plan in a folder, resuming whatever an earlier run of the same plan finished."""

    def __init__(self, plan: Plan, folder: Path, say: Callable[[str], None] | None = None):
        self.plan = plan
        self.folder = folder
        self.say = say or (lambda line: print(line, file=sys.stderr, flush=True))

    def run(self, overwrite: bool = False) -> list[str]:
        """Every arm, then the baseline and the reports; returns the names of failed arms."""
        self.start(overwrite)
        self.say(f"ablation in {self.folder}: {len(self.plan.arms)} arms x {self.plan.steps:,} "
                 f"steps of {self.plan.tokens_per_step:,} tokens ({self.plan.preset}); logs "
                 f"in {self.folder / 'logs'}")
        tokenizer = self.shared_tokenizer()
        failed = []
        for number, arm in enumerate(self.plan.arms, 1):
            label = f"[{number}/{len(self.plan.arms)} {arm.name}]"
            try:
                ArmRun(self, arm, tokenizer, label).run()
            except StepFailed as error:
                failed.append(arm.name)
                self.say(f"{label} failed: {error}")
                write_json(self.arm_folder(arm) / "failed.json", {"error": str(error)})
            self.write_reports()
        if self.plan.task is not None:
            self.baseline()
        results = self.write_reports()
        from winnow.ablate_report import format_table

        self.say("\n" + format_table(results))
        self.say(f"wrote {self.folder / 'results.json'}, results.md and report.html")
        return failed

    def start(self, overwrite: bool) -> None:
        """Hold DIR's lock; create DIR, or check that it holds this plan's shared settings."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.lock()
        plan_file = self.folder / PLAN_FILE
        if plan_file.exists():
            earlier = json.loads(plan_file.read_text(encoding="utf-8"))
            if earlier != self.plan.shared():
                if not overwrite:
                    raise AblateError(
                        f"{self.folder} holds an ablation with other settings ("
                        f"{', '.join(differing_keys(earlier, self.plan.shared()))}); give a new "
                        "--output, or --overwrite to start over")
                self.clear()
        elif self.entries():
            if not overwrite:
                (self.folder / LOCK_FILE).unlink()  # not ours: leave the folder as it was
                raise AblateError(f"{self.folder} is not empty and holds no ablation; give a "
                                  "new --output, or --overwrite to replace it")
            self.clear()
        (self.folder / "logs").mkdir(exist_ok=True)
        for arm in self.plan.arms:
            self.check_arm(arm)
        write_json(plan_file, self.plan.shared())
        # The batch is written out: the steps were counted with it, whatever the device.
        write_text(self.folder / "train.yaml", yaml.safe_dump(
            {**self.plan.train_config, "batch_size": self.plan.batch_size, "eval_every": 0,
             "eval_examples": 0, "checkpoint_every": 0}, sort_keys=False))

    def entries(self) -> list[Path]:
        """What DIR holds besides the lock."""
        return [entry for entry in self.folder.iterdir() if entry.name != LOCK_FILE]

    def clear(self) -> None:
        for entry in self.entries():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    def lock(self) -> None:
        """Two ablations in one DIR would run the same steps into the same folders: the second
        is refused. The lock is the OS's (flock), so a killed run leaves none behind."""
        import fcntl

        self._lock_file = open(self.folder / LOCK_FILE, "w")  # held until the process ends
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AblateError(f"another winnow ablate is running in {self.folder}") from None

    def check_arm(self, arm: Arm) -> None:
        """An arm folder from an earlier run must hold the same config."""
        folder = self.arm_folder(arm)
        recorded = folder / "arm.json"
        mine = {"name": arm.name, "description": arm.description, "curation": arm.curation}
        if recorded.exists():
            if json.loads(recorded.read_text(encoding="utf-8"))["curation"] != arm.curation:
                raise AblateError(f"arm {arm.name}: {folder} was run with another curation "
                                  "config; rename the config, or --overwrite to start over")
        folder.mkdir(parents=True, exist_ok=True)
        write_json(recorded, mine)
        (folder / "failed.json").unlink(missing_ok=True)

    def arm_folder(self, arm: Arm) -> Path:
        return self.folder / "arms" / arm.name

    def training_data(self, arm: Arm) -> str | None:
        """``training_data_sha256`` of the arm's shards; None before it is curated."""
        manifest = self.arm_folder(arm) / "curated" / "shards" / "manifest.json"
        return training_data_sha256(manifest) if manifest.exists() else None

    def trained_twin(self, arm: Arm) -> Arm | None:
        """Another arm, trained here to the end, whose shards hold the same training data."""
        training_data = self.training_data(arm)
        for other in self.plan.arms:
            folder = self.arm_folder(other)
            if (other == arm or (folder / SAME_DATA_FILE).exists()
                    or self.training_data(other) != training_data):
                continue
            finished = evaluation_file(folder, self.plan.steps).exists() and (
                self.plan.task is None or finished_finetune(folder / "finetune"))
            if finished:
                return other
        return None

    def shared_tokenizer(self) -> str:
        """The SentencePiece model every arm's shards use."""
        if self.plan.tokenizer_model:
            return self.plan.tokenizer_model
        prefix = self.folder / "tokenizer" / "spm"
        model = prefix.with_suffix(".model")
        if model.exists():
            return str(model)
        prefix.parent.mkdir(exist_ok=True)
        partial = prefix.with_name("partial")
        options = [f"--{key.replace('_', '-')}={value}"
                   for key, value in self.plan.tokenizer_settings.items()]
        seconds = self.winnow(["tokenizer", "train", *self.plan.inputs, "--output",
                               str(partial), *options], "tokenizer")
        os.replace(partial.with_suffix(".vocab"), prefix.with_suffix(".vocab"))
        os.replace(partial.with_suffix(".model"), model)  # last: its presence means done
        self.say(f"shared tokenizer trained on the raw inputs: {seconds:.0f} s")
        return str(model)

    def baseline(self) -> None:
        """The untrained model (same architecture, vocabulary and seed) fine-tuned on the task."""
        done = [arm for arm in self.plan.arms if latest_step(self.arm_folder(arm) / "pretrain")]
        results = self.folder / "baseline" / "finetune"
        if not done or finished_finetune(results):
            return
        model = self.arm_folder(done[0]) / "pretrain"
        try:
            seconds = self.winnow(["finetune", str(model), "--init", "random",
                                   *finetune_options(self.plan.task, results)],
                                  "baseline-finetune")
        except StepFailed as error:
            self.say(f"[baseline] failed: {error}")
            return
        self.say(f"[baseline] untrained model fine-tuned: {seconds:.0f} s")

    def write_reports(self) -> dict[str, Any]:
        from winnow.ablate_report import collect_results, write_reports

        results = collect_results(self)
        write_reports(results, self.folder)
        return results

    def winnow(self, argv: list[str], log_name: str, stdout_to: Path | None = None,
               relay: str | None = None) -> float:
        """Run ``python -m winnow ARGV`` with its output in DIR/logs/LOG_NAME.log (stdout into
        ``stdout_to`` when given, atomically); StepFailed, with the log's last lines, when it
        fails. ``relay``: a label to say the step's latest progress line with, every
        ``RELAY_SECONDS`` (curate logs one every 30 s). Returns its wall seconds."""
        log_path = self.folder / "logs" / f"{log_name}.log"
        command = [sys.executable, "-m", "winnow", *argv]
        env = {**os.environ, "TQDM_DISABLE": "1"}  # no progress bars in the logs
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(f"\n$ winnow {shlex.join(argv)}\n")
            log.flush()
            start = time.perf_counter()
            if stdout_to is None:
                returncode, stdout = run_relaying(command, env, log, log_path, self.say,
                                                  relay), b""
            else:
                completed = subprocess.run(command, stdout=subprocess.PIPE, stderr=log,
                                           env=env, check=False)
                returncode, stdout = completed.returncode, completed.stdout
            seconds = time.perf_counter() - start
            log.write(f"# exit {returncode} after {seconds:.1f} s\n")
        if returncode:
            raise StepFailed(f"winnow {argv[0]} exited {returncode}: "
                             f"{last_lines(log_path)} (log: {log_path})")
        if stdout_to is not None:
            write_text(stdout_to, stdout.decode("utf-8"))
        return seconds


class ArmRun:
    """One arm's steps: curate, pretrain to each evaluation point and evaluate, fine-tune."""

    def __init__(self, ablation: Ablation, arm: Arm, tokenizer: str, label: str):
        self.ablation, self.arm, self.tokenizer, self.label = ablation, arm, tokenizer, label
        self.plan = ablation.plan
        self.folder = ablation.arm_folder(arm)

    def run(self) -> None:
        curation = self.curate()
        if not curation["examples"]:
            raise StepFailed(f"curation kept no training examples ({curation['kept']:,} "
                             "documents kept)")
        twin = self.ablation.trained_twin(self.arm)
        if twin is not None:
            # The same training data, tokenizer, model, steps and seed: the same model. A stage
            # that removes nothing from this corpus costs no training.
            write_json(self.folder / SAME_DATA_FILE, {"arm": twin.name})
            self.ablation.say(f"{self.label} its shards hold the same training data as "
                              f"{twin.name}'s: figures taken from {twin.name}")
            return
        for step in self.plan.eval_steps:
            if not self.evaluation(step).exists():
                self.train_to(step)
                self.evaluate_at(step)
        if self.plan.task is not None:
            self.finetune()

    def curate(self) -> dict[str, Any]:
        """Curate the inputs (once): DIR/arms/NAME/curation.json holds the figures."""
        summary_file = self.folder / "curation.json"
        if summary_file.exists():
            return json.loads(summary_file.read_text(encoding="utf-8"))
        config = {**self.arm.curation,
                  "tokenizer": {**self.arm.curation.get("tokenizer", {}),
                                "model": self.tokenizer}}
        config_file = self.folder / "curate.yaml"
        write_text(config_file, yaml.safe_dump(config, sort_keys=False))
        run = self.folder / "curated"
        seconds = self.ablation.winnow(
            ["curate", *self.plan.inputs, "--output", str(run), "--config", str(config_file),
             "--overwrite", *self.plan.beam_args], f"{self.arm.name}-curate",
            relay=f"{self.label} curating:")
        summary = curation_summary(json.loads((run / "report.json").read_text("utf-8")),
                                   seconds)
        write_json(summary_file, summary)
        self.ablation.say(f"{self.label} curated in {summary['seconds']:.0f} s: kept "
                          f"{summary['kept']:,} of {summary['input']:,} documents, "
                          f"{summary['tokens']:,} tokens in {summary['examples']:,} examples")
        return summary

    def train_to(self, step: int) -> None:
        """Pretrain (or resume) until a checkpoint at ``step`` exists; the schedule is the
        whole run's, so stopping at each point changes nothing (resume is exact)."""
        run = self.folder / "pretrain"
        done = latest_step(run)
        if done == step:
            return
        if done is not None and done > step:
            raise StepFailed(f"{run} is at step {done}, past the evaluation at step {step} "
                             "whose result is missing; delete the arm's folder to redo it")
        if done is None:
            shutil.rmtree(run, ignore_errors=True)  # a start that wrote no checkpoint
            argv = ["pretrain", "--shards", str(self.folder / "curated"), "--output", str(run),
                    "--config", str(self.ablation.folder / "train.yaml"),
                    "--preset", self.plan.preset, "--max-steps", str(self.plan.steps)]
        else:
            argv = ["pretrain", "--output", str(run), "--resume"]
        seconds = self.ablation.winnow([*argv, "--stop-after", str(step)],
                                       f"{self.arm.name}-pretrain")
        self.ablation.say(f"{self.label} pretrained to step {step:,} of {self.plan.steps:,}: "
                          f"{seconds:.0f} s")

    def evaluation(self, step: int) -> Path:
        return evaluation_file(self.folder, step)

    def evaluate_at(self, step: int) -> None:
        result = self.evaluation(step)
        self.ablation.winnow(
            ["evaluate", str(self.folder / "pretrain"), "--text", *self.plan.eval_text,
             "--text-field", self.plan.eval_text_field, "--json",
             "--max-examples", str(self.plan.eval_max_examples)],
            f"{self.arm.name}-evaluate", stdout_to=result)
        figures = json.loads(result.read_text(encoding="utf-8"))
        self.ablation.say(f"{self.label} held-out at step {step:,}: MLM loss "
                          f"{figures['mlm_loss']:.3f}, {figures['mlm_bits_per_byte']:.3f} "
                          "bits per byte")

    def finetune(self) -> None:
        results = self.folder / "finetune"
        if finished_finetune(results):
            return
        seconds = self.ablation.winnow(
            ["finetune", str(self.folder / "pretrain"),
             *finetune_options(self.plan.task, results)], f"{self.arm.name}-finetune")
        self.ablation.say(f"{self.label} fine-tuned on the task: {seconds:.0f} s")


def evaluation_file(arm_folder: Path, step: int) -> Path:
    """``winnow evaluate --json`` of the arm's checkpoint at ``step``."""
    return arm_folder / "eval" / f"step-{step:06d}.json"


def finetune_options(task: Task, output: Path) -> list[str]:
    options = ["--train", *task.train, "--test", *task.test, "--output", str(output),
               "--overwrite", "--seeds", str(task.seeds), "--text-field", task.text_field,
               "--label-field", task.label_field]
    for flag, value in (("--lr", task.lr), ("--epochs", task.epochs),
                        ("--max-seq-len", task.max_seq_len)):
        if value is not None:
            options += [flag, str(value)]
    return options


def curation_summary(report: dict[str, Any], seconds: float) -> dict[str, Any]:
    """The figures of a curate run the table shows."""
    documents, shards = report["documents"], report.get("shards", {})
    return {"input": documents["input"], "kept": documents["kept"],
            "removed": sum(documents["removed"].values()),
            "quarantined": sum(documents["quarantined"].values()),
            "tokens": shards.get("tokens", 0), "examples": shards.get("examples", 0),
            "seconds": round(report.get("wall_seconds", seconds), 1)}


def training_data_sha256(manifest_path: Path) -> str:
    """One hash of what pretraining reads from a shard folder: the tokenizer, the objective
    and length, and every shard's tokens and index (not the provenance files, which name the
    documents: two arms can train on the same tokens from differently named records)."""
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    read = [manifest["tokenizer_sha256"], manifest["objective"], str(manifest["max_seq_len"])]
    for shard in manifest["shards"]:
        read += [digest for name, digest in sorted(shard["files"].items())
                 if name.endswith((".tokens.bin", ".index.npy"))]
    return hashlib.sha256("\n".join(read).encode()).hexdigest()


def finished_finetune(folder: Path) -> bool:
    results = folder / "results.json"
    return results.exists() and json.loads(results.read_text(encoding="utf-8"))["complete"]


def differing_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return sorted(key for key in old.keys() | new.keys() if old.get(key) != new.get(key))


RELAY_SECONDS = 30.0
"""How often a relayed step's latest progress line is said (when it changed)."""


def run_relaying(command: list[str], env: dict[str, str], log, log_path: Path,
                 say: Callable[[str], None], label: str | None,
                 every: float = RELAY_SECONDS) -> int:
    """Run ``command`` with stdout and stderr into ``log`` (open on ``log_path``) and return
    its exit code; with a ``label``, say "LABEL progress: ..." every ``every`` seconds when the
    log has a newer progress line, so a long step is not silent. A Ctrl-C ends the child too."""
    since = log_path.stat().st_size
    process = subprocess.Popen(command, stdout=log, stderr=log, env=env)
    try:
        said = None
        while True:
            try:
                return process.wait(timeout=every if label else None)
            except subprocess.TimeoutExpired:
                line = latest_progress_line(log_path, since)
                if line and line != said:
                    say(f"{label} {line}")
                    said = line
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def latest_progress_line(path: Path, since: int = 0) -> str | None:
    """The last "progress: ..." line written to ``path`` after byte ``since``, or None."""
    with open(path, "rb") as handle:
        handle.seek(max(since, handle.seek(0, os.SEEK_END) - (1 << 16)))
        lines = handle.read().decode("utf-8", errors="replace").splitlines()
    return next((line for line in reversed(lines) if line.startswith("progress: ")), None)


def last_lines(path: Path, count: int = 3) -> str:
    lines = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace")
             .splitlines() if line.strip() and not line.startswith(("$ ", "# exit"))]
    return " | ".join(lines[-count:])


def write_text(path: Path, text: str) -> None:
    """Write atomically (the trainer's ``checkpoints.write_text``): a file that exists is
    whole. Its folder is made first."""
    from winnow.trainer.checkpoints import write_text as write_atomically

    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(str(path), text)


def latest_step(run: Path) -> int | None:
    """The step of the run's latest checkpoint; None when it has none."""
    from winnow.trainer.checkpoints import latest_step as checkpoint_step

    return checkpoint_step(str(run))


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2) + "\n")
