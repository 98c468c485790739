#!/usr/bin/env bash
# Install horq-keras the way a user does and use it: build the sdist and the wheel,
# install the wheel (not editable) into a fresh virtualenv, and there, outside the
# repository: import every module, run `horq-keras --version`, `--help`, `train --help`,
# and a tiny train -> convert -> verify on real MNIST (a few seconds of training).
#
#   scripts/check_wheel.sh            needs `make setup` first (.venv with `build`, data/mnist)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
WORK=$(mktemp -d "${TMPDIR:-/tmp}/horq_keras_wheel.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

echo "==> building the sdist and the wheel into $WORK/dist"
.venv/bin/python -m build --no-isolation --outdir "$WORK/dist" . >"$WORK/build.log" 2>&1 \
  || { cat "$WORK/build.log"; exit 1; }
rm -rf build ./*.egg-info
ls "$WORK/dist"

echo "==> installing the wheel into a fresh virtualenv"
"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install -q --upgrade pip
"$WORK/venv/bin/python" -m pip install -q "$WORK"/dist/horq_keras-*.whl

cd "$WORK"  # nothing of the repository on sys.path
BIN=$WORK/venv/bin
echo "==> importing every module of the installed package"
TF_CPP_MIN_LOG_LEVEL=3 "$BIN/python" - <<'PY'
import importlib, pkgutil, sys
import horq_keras
location = horq_keras.__path__[0]
assert "site-packages" in location, f"horq_keras imported from {location}, not the wheel"
names = ["horq_keras", *(m.name for m in pkgutil.walk_packages(horq_keras.__path__, "horq_keras."))]
failed = {}
for name in names:
    try:
        importlib.import_module(name)
    except Exception as error:  # report every module that fails, then fail
        failed[name] = f"{type(error).__name__}: {error}"
for name, error in failed.items():
    print(f"cannot import {name}: {error}", file=sys.stderr)
assert "horq_keras.training.train" in names and "horq_keras.converters.conversion" in names
print(f"imported {len(names) - len(failed)} of {len(names)} modules from {location}")
sys.exit(1 if failed else 0)
PY
"$BIN/horq-keras" --version
"$BIN/horq-keras" --help >/dev/null
"$BIN/horq-keras" train --help >/dev/null
echo "==> tiny train -> convert -> verify"
"$BIN/horq-keras" train --data mnist --data-dir "$ROOT/data/mnist" --limit-train 512 \
  --limit-test 128 --epochs 1 --verify-samples 128 --output-dir "$WORK/run"
"$BIN/horq-keras" convert "$WORK/run/model.h5" -o "$WORK/model.tflite" --quiet \
  --data mnist --data-dir "$ROOT/data/mnist" --verify 128
"$BIN/horq-keras" verify "$WORK/run/model.h5" "$WORK/model.tflite" --quiet \
  --data "idx:$ROOT/data/mnist" --samples 128
echo "==> the installed wheel works"
