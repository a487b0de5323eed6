#!/usr/bin/env bash
# `make test-arm` (part of `make test`): the engine on 64-bit ARM (NEON). Cross-builds the
# engine and its tests with Debian's g++-aarch64-linux-gnu and runs them under qemu-user: by
# default every kernel, the F16 attention steps, attention and the quantizers on the NEON and
# scalar targets against their scalar references, bit for bit (about 1.5 minutes emulated).
# FILTER="*" runs every engine test, the models against llama.cpp's logits included (319
# tests, 16 minutes on 2 cores). qemu says nothing about speed: this is builds and bits.
#
# Settings (environment): BUILD (build-arm), FILTER (the gtest filter), JOBS (nproc).
set -euo pipefail

BUILD=${BUILD:-build-arm}
JOBS=${JOBS:-$(nproc)}
FILTER=${FILTER:-*Kernel*:*F16Steps*:*Attention*:*Quant*:-AttentionSplitTest.*}
SYSROOT="$PWD/$BUILD/sysroot"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"

# The cross compiler and qemu (amd64 packages).
need=()
for p in g++-aarch64-linux-gnu qemu-user; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if ((${#need[@]})); then
  $SUDO apt-get install -y --no-install-recommends "${need[@]}" ||
    { $SUDO apt-get update && $SUDO apt-get install -y --no-install-recommends "${need[@]}"; }
fi

# The engine's arm64 libraries, unpacked into a sysroot (same versions as the amd64 ones).
ARM_PACKAGES=(libhwy-dev:arm64 libhwy1:arm64 libgtest-dev:arm64 libgmock-dev:arm64
  libfmt-dev:arm64 libfmt9:arm64 libpcre2-dev:arm64 libpcre2-8-0:arm64 libxxhash-dev:arm64
  libxxhash0:arm64 nlohmann-json3-dev)
if [[ ! -f "$SYSROOT/.complete" ]]; then
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    $SUDO dpkg --add-architecture arm64
    $SUDO apt-get update
  fi
  rm -rf "$BUILD/debs" "$SYSROOT"
  mkdir -p "$BUILD/debs" "$SYSROOT"
  (cd "$BUILD/debs" && apt-get download "${ARM_PACKAGES[@]}") ||
    { $SUDO apt-get update && (cd "$BUILD/debs" && apt-get download "${ARM_PACKAGES[@]}"); }
  for f in "$BUILD"/debs/*.deb; do dpkg -x "$f" "$SYSROOT"; done
  touch "$SYSROOT/.complete"
fi

export DM_ARM_SYSROOT="$SYSROOT"  # the toolchain file's try_compile runs read it too
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDORMOUSE_ENGINE_ONLY=ON \
  -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/aarch64-linux-gnu.cmake" >/dev/null
cmake --build "$BUILD" -j"$JOBS" --target engine_tests
cd "$BUILD"
qemu-aarch64 -L /usr/aarch64-linux-gnu ./engine_tests --gtest_filter="$FILTER" --gtest_brief=1
