#!/usr/bin/env bash
# Run an aarch64 program under qemu-aarch64 (Cortex-A72) with the guest root and site-packages
# of scripts/setup_arm_emulation.sh, in a private mount namespace whose /proc/cpuinfo is an
# aarch64 one (XNNPACK's CPU detection reads it). Usage:
#   run_guest.sh [-plugin SO,ARGS] PROGRAM ARGS...    (PROGRAM: a path, or python3.11)
# Environment: ARM_ROOT (default <repo>/.arm), ARM_CPU (default cortex-a72).
set -euo pipefail
ARM_ROOT=${ARM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)/.arm}
plugin=()
if [ "${1:-}" = -plugin ]; then plugin=(-plugin "$2"); shift 2; fi
program=$1; shift
[ "$program" = python3.11 ] && program=$ARM_ROOT/guest/usr/bin/python3.11
export QEMU_LD_PREFIX=$ARM_ROOT/guest PYTHONPATH=$ARM_ROOT/site PYTHONHASHSEED=0
export PYTHONNOUSERSITE=1 PYTHONDONTWRITEBYTECODE=1 OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
exec unshare -m -- sh -c 'mount --bind "$0" /proc/cpuinfo && exec "$@"' "$ARM_ROOT/cpuinfo" \
  qemu-aarch64 -cpu "${ARM_CPU:-cortex-a72}" "${plugin[@]}" "$program" "$@"
