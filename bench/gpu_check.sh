#!/usr/bin/env bash
# The GPU check, in one go, for a session lent a device machine (about 10 minutes of it):
#   1. install winnow into that machine's Python, which already holds torch with CUDA (nothing
#      can be fetched there, so no dependency is installed: --no-deps);
#   2. run the tests that skip without CUDA (their names say cuda);
#   3. bench/train.py's GPU part (b): BERT-base, bf16, padded and unpadded, at sequence 128
#      (batch 256) and 512 (batch 64), eager then torch.compile, each under its own time limit.
# Every log and figure lands in $OUT (at most 8 files, none in subfolders: what the device tool
# brings back); summary.txt gathers the figures.
#
#   device tool:  run  command="bash bench/gpu_check.sh"  timeout_s=600
#   here, on the CPU, to see that it runs end to end (tiny preset, few steps; it installs only
#   into a Python where winnow does not import yet):
#                 GPU_CHECK_CPU=1 PYTHON=.venv/bin/python OUT=/tmp/gpu-check bash bench/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[[ $PY == */* ]] && PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")  # absolute: see cd below
mkdir -p "${OUT:?set OUT to the folder for the logs}" && OUT=$(cd "$OUT" && pwd)
PRESET=base EXAMPLES=4000 STEPS=20
[ -n "${GPU_CHECK_CPU:-}" ] && PRESET=tiny EXAMPLES=600 STEPS=2  # a dry run: small
export PYTHONUNBUFFERED=1  # a run stopped by its time limit keeps what it printed
started=$SECONDS
step() { echo "== $* ($((SECONDS - started)) s)" | tee -a "$OUT/summary.txt"; }

step "machine"
{ nvidia-smi || echo "no nvidia-smi"; "$PY" -c 'import sys, torch
print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda,
      "available", torch.cuda.is_available())'; } > "$OUT/machine.txt" 2>&1
tail -1 "$OUT/machine.txt" | tee -a "$OUT/summary.txt"

step "install"
if ! "$PY" -c 'import winnow.trainer' 2>/dev/null; then
  timeout 60 "$PY" -m pip install --no-deps --no-build-isolation --no-index -e . \
    > "$OUT/install.log" 2>&1 || echo "pip install failed (install.log)" | tee -a "$OUT/summary.txt"
fi
if ! "$PY" -c 'import winnow.trainer' 2>/dev/null; then
  # not installed (its setuptools older than pyproject.toml needs, say): a copy of the checkout
  # made of links, whose winnow/ holds the four folders as pyproject's package-dir maps them
  links=$(mktemp -d) && mkdir "$links/winnow" && ln -s "$PWD"/winnow/* "$links/winnow/"
  for folder in pipeline filters trainer schemas; do ln -s "$PWD/$folder" "$links/winnow/"; done
  ln -s "$PWD"/tests "$PWD"/bench "$links/" && cd "$links" && export PYTHONPATH=$links
  echo "not installed: run from links in $links" | tee -a "$OUT/summary.txt"
fi
"$PY" -c 'import winnow.trainer.train; print("winnow from", winnow.__file__)' 2>&1 | tail -1 \
  | tee -a "$OUT/summary.txt"

step "CUDA tests"
timeout 120 "$PY" -m pytest -q -rs -k cuda -p no:cacheprovider --basetemp "$(mktemp -d)/t" \
  tests/trainer/test_model.py tests/trainer/test_train.py tests/trainer/test_defaults.py \
  tests/trainer/test_zero.py \
  > "$OUT/tests.log" 2>&1
tail -3 "$OUT/tests.log" | tee -a "$OUT/summary.txt"

# (sequence, batch, extra flags, seconds allowed): eager first, so that a slow compile cannot
# cost the eager figures
for run in "128 256 '' 60" "512 64 '' 60" "128 256 --compile 110" "512 64 --compile 110"; do
  eval "set -- $run"
  name="bench-$1${3:+-compiled}"
  step "$name"
  timeout "$4" "$PY" bench/train.py --preset "$PRESET" --seq-len "$1" --batch-size "$2" \
    --examples "$EXAMPLES" --steps "$STEPS" --workers 0 $3 --cpu-presets \
    > "$OUT/$name.log" 2>&1 || echo "exit $? (124: out of time)" | tee -a "$OUT/summary.txt"
  grep -A3 '^(b)' "$OUT/$name.log" | tee -a "$OUT/summary.txt"
done
step "done"
