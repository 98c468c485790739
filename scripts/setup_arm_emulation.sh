#!/usr/bin/env bash
# Set up aarch64 emulation for benchmarks/arm_emulated.py (ARM instruction counts without a
# board). Idempotent; needs root and apt-get; not part of `make test` (run `make arm-setup`).
#
# What it installs:
# - on the system (apt-get): qemu-user (qemu-aarch64 7.2), gcc-aarch64-linux-gnu (+ its
#   arm64 libc), libglib2.0-dev, pkg-config, xz-utils: about 230 MB installed.
# - under $ARM_ROOT (default .arm/ in the repository, gitignored), about 200 MB in all
#   (`du -sh .arm` printed at the end; downloads: ~130 MB incl. the 120 MB qemu source):
#   apt/         a private apt state (40 MB of arm64 and deb-src package lists; the .debs and
#                the qemu source tarball are deleted once used); the system's apt
#                configuration and architectures are not touched
#   plugins/     qemu TCG plugins built from Debian's qemu source package (the version of
#                the installed qemu-user): libinsn.so, libcache.so, libhotblocks.so, and
#                libmarker.so (this project's: instruction counts between guest markers)
#   guest/       Debian's arm64 python3.11 and the libraries it needs, unpacked with
#                `dpkg-deb -x` (not installed): the guest root for QEMU_LD_PREFIX (75 MB)
#   site/        aarch64 wheels of ai-edge-litert and numpy (pip --platform --target; 117 MB)
#   cpuinfo      an aarch64 /proc/cpuinfo (Cortex-A72, 1 core), bind-mounted over
#                /proc/cpuinfo in a private mount namespace so XNNPACK's CPU detection works
# The NEON kernels of benchmarks/arm/neon_bgemm.c are cross-compiled on first use into the
# checkout's .arm-kernel/ (benchmarks/_arm_emulator.py), one binary per source version.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
ARM_ROOT=${ARM_ROOT:-$REPO/.arm}
SUITE=${ARM_SUITE:-bookworm}
MIRROR=${ARM_MIRROR:-http://deb.debian.org/debian}
SYSTEM_PACKAGES="qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross libglib2.0-dev pkg-config xz-utils"
GUEST_PACKAGES="python3.11 libstdc++6"
PIP_PACKAGES=("ai-edge-litert==2.3.0" "numpy==1.26.4")

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "setup_arm_emulation.sh: needs root and apt-get (Debian)" >&2
  exit 1
fi
mkdir -p "$ARM_ROOT"

echo "==> system packages: $SYSTEM_PACKAGES"
missing=()
for p in $SYSTEM_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# A private apt (arm64 as the only architecture, deb-src for the qemu source) under
# $ARM_ROOT/apt, so the machine's own apt sources and architectures stay as they are.
APT_DIR=$ARM_ROOT/apt
mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/archives/partial" "$APT_DIR/src"
touch "$APT_DIR/status"
cat > "$APT_DIR/sources.list" <<EOF
deb [arch=arm64] $MIRROR $SUITE main
deb [arch=arm64] $MIRROR $SUITE-updates main
deb [arch=arm64] http://deb.debian.org/debian-security $SUITE-security main
deb-src $MIRROR $SUITE main
deb-src $MIRROR $SUITE-updates main
deb-src http://deb.debian.org/debian-security $SUITE-security main
EOF
APT_OPTS=(
  -o "Dir::Etc::SourceList=$APT_DIR/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$APT_DIR/lists" -o "Dir::State::status=$APT_DIR/status"
  -o "Dir::Cache::Archives=$APT_DIR/archives" -o "Dir::Cache=$APT_DIR/cache"
  -o APT::Architecture=arm64 -o APT::Architectures::=arm64 -o Debug::NoLocking=1
  -o APT::Get::AllowUnauthenticated=false
)
if [ ! -f "$APT_DIR/updated" ]; then
  echo "==> private apt-get update (arm64 + deb-src, $SUITE)"
  apt-get "${APT_OPTS[@]}" update -qq
  touch "$APT_DIR/updated"
fi

# qemu plugins, from the source of the installed qemu-user's version.
QEMU_VERSION=$(dpkg-query -W -f '${source:Version}' qemu-user)
PLUGINS=$ARM_ROOT/plugins
if [ ! -f "$PLUGINS/version" ] || [ "$(cat "$PLUGINS/version")" != "$QEMU_VERSION" ]; then
  echo "==> qemu $QEMU_VERSION source: plugin sources and qemu-plugin.h"
  (cd "$APT_DIR/src" && apt-get "${APT_OPTS[@]}" source --download-only -qq "qemu=$QEMU_VERSION")
  tarball=$(ls "$APT_DIR"/src/qemu_*.orig.tar.xz | head -1)
  rm -rf "$PLUGINS" && mkdir -p "$PLUGINS/src"
  tar -xJf "$tarball" -C "$PLUGINS/src" --strip-components=1 --wildcards \
    '*/include/qemu/qemu-plugin.h' '*/tests/plugin/insn.c' '*/contrib/plugins/cache.c' \
    '*/contrib/plugins/hotblocks.c'
  cp "$REPO/benchmarks/arm/marker_plugin.c" "$PLUGINS/src/marker.c"
  GLIB=$(pkg-config --cflags --libs glib-2.0)
  for source in tests/plugin/insn.c contrib/plugins/cache.c contrib/plugins/hotblocks.c marker.c; do
    name=$(basename "$source" .c)
    # shellcheck disable=SC2086
    gcc -O2 -shared -fPIC -I "$PLUGINS/src/include/qemu" "$PLUGINS/src/$source" \
      -o "$PLUGINS/lib$name.so" $GLIB
  done
  echo "$QEMU_VERSION" > "$PLUGINS/version"
  rm -f "$APT_DIR"/src/*  # the source tarball is no longer needed
fi

GUEST=$ARM_ROOT/guest
if [ ! -x "$GUEST/usr/bin/python3.11" ]; then
  echo "==> arm64 $GUEST_PACKAGES and dependencies (downloaded, unpacked with dpkg-deb -x)"
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" install -y -qq --download-only \
    --no-install-recommends $GUEST_PACKAGES
  rm -rf "$GUEST.tmp" && mkdir -p "$GUEST.tmp"
  for deb in "$APT_DIR"/archives/*_arm64.deb "$APT_DIR"/archives/*_all.deb; do
    [ -f "$deb" ] && dpkg-deb -x "$deb" "$GUEST.tmp"
  done
  rm -rf "$GUEST" && mv "$GUEST.tmp" "$GUEST"
  rm -f "$APT_DIR"/archives/*.deb
fi

SITE=$ARM_ROOT/site
if [ ! -d "$SITE/ai_edge_litert" ]; then
  echo "==> aarch64 wheels: ${PIP_PACKAGES[*]}"
  rm -rf "$SITE.tmp"
  PIP_CONSTRAINT= python3 -m pip install -q --no-compile --target "$SITE.tmp" --only-binary=:all: \
    --platform manylinux_2_27_aarch64 --platform manylinux2014_aarch64 \
    --python-version 3.11 --implementation cp "${PIP_PACKAGES[@]}"
  rm -rf "$SITE" && mv "$SITE.tmp" "$SITE"
fi

# /proc/cpuinfo of a Raspberry Pi 4B (Cortex-A72, r0p3), one core.
cat > "$ARM_ROOT/cpuinfo" <<'EOF'
processor	: 0
BogoMIPS	: 108.00
Features	: fp asimd evtstrm crc32 cpuid
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x0
CPU part	: 0xd08
CPU revision	: 3

EOF

echo "==> check: aarch64 python imports ai_edge_litert"
"$REPO/benchmarks/arm/run_guest.sh" python3.11 -c \
  "import ai_edge_litert.interpreter, numpy; print('guest python ok, numpy', numpy.__version__)"
echo "==> done: $(du -sh "$ARM_ROOT" | cut -f1) in $ARM_ROOT"
