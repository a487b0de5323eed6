#!/usr/bin/env bash
# Installs the Debian packages dormouse builds and tests with. Idempotent: skips apt
# entirely when every package is already present, so `make run` stays fast after the
# first time.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config clang-format clang libclang-rt-14-dev
  libhwy-dev          # SIMD with runtime dispatch
  libpcre2-dev        # Unicode-aware pre-tokenizer regexes
  libgtest-dev libgmock-dev googletest
  libbenchmark-dev
  libcli11-dev        # CLI parsing
  nlohmann-json3-dev  # JSON (logits dump, later the HTTP API)
  libfmt-dev
  libxxhash-dev       # model fingerprints, snapshot checksums
  libzstd-dev
  libsqlite3-dev
  libcpp-httplib-dev  # built with OpenSSL support (its pkg-config defines CPPHTTPLIB_OPENSSL_SUPPORT)
  libssl-dev          # TLS for pulls, SHA-256 of downloads
  util-linux          # script(1), for the chat-on-a-terminal test
  chromium            # headless browser for the web app's end-to-end tests (tests/web)
)
# End-to-end tests drive the server with the real openai/ollama npm clients. Machines of
# this kind ship Node.js and npm; take Debian's only where they are missing, so a newer
# Node.js already on PATH is never shadowed.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  PACKAGES+=(nodejs npm)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${missing[@]}"
