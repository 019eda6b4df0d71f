"""Every command's path arguments: gs:// where the command can read or write it, else one line
refusing it before anything runs (winnow.cli.LOCAL_ONLY_PATHS). No storage is touched here."""

import pytest

from winnow.cli import LOCAL_ONLY_PATHS, build_parser, main

REFUSED = [
    (["pretrain", "--shards", "RUN", "--output", "gs://b/run"], "--output gs://b/run"),
    (["pretrain", "--shards", "gs://b/shards", "--output", "out", "--config", "gs://b/c.yaml"],
     "--config gs://b/c.yaml"),
    (["pretrain", "--shards", "gs://b/shards", "--output", "out", "--shard-cache",
      "gs://b/cache"], "--shard-cache gs://b/cache"),
    (["export", "gs://b/run", "--output", "out"], "RUN gs://b/run"),
    (["export", "run", "--output", "gs://b/model"], "--output gs://b/model"),
    (["evaluate", "gs://b/model", "--text", "a.jsonl"], "MODEL gs://b/model"),
    (["finetune", "gs://b/model", "--train", "t.jsonl", "--output", "out"], "MODEL gs://b/model"),
    (["finetune", "model", "--train", "gs://b/t.csv", "--output", "s3://b/out"],
     "--output s3://b/out"),
    (["quality", "train", "--positive", "gs://b/hq", "--negative", "lq", "--output",
      "gs://b/q.bin"], "--output gs://b/q.bin"),
    (["ablate", "gs://b/in", "--output", "gs://b/ablation", "--tokens", "1000", "--eval-text",
      "held.jsonl"], "--output gs://b/ablation"),
    (["ablate", "in", "--output", "out", "--tokens", "1000", "--eval-text", "gs://b/held.jsonl",
      "--train-config", "gs://b/train.yaml"], "--train-config gs://b/train.yaml"),
]


@pytest.mark.parametrize("argv, named", REFUSED, ids=[argv[0] + "-" + named.split()[0]
                                                      for argv, named in REFUSED])
def test_a_url_where_only_a_local_path_works_is_one_line(argv, named, capsys, tmp_path,
                                                        monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"winnow {argv[0]}: {named}: a local path only") and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # nothing ran


def test_every_refused_argument_exists():
    parser = build_parser()
    commands = {name: command for action in parser._subparsers._group_actions
                for name, command in action.choices.items()}
    for command, dests in LOCAL_ONLY_PATHS.items():
        parsers = [commands[command]]
        parsers += [p for a in commands[command]._actions if a.choices and isinstance(
            a.choices, dict) for p in a.choices.values()]
        known = {action.dest for p in parsers for action in p._actions}
        assert set(dests) <= known, command
