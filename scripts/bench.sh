#!/usr/bin/env bash
# `make bench`: llama-bench-style figures (pp512, tg128, and both again at depth 4096) for the
# shared models and for 1B-shaped random files, each with the memory read bandwidth measured
# just before it and decode as a fraction of that roofline. The 1B files (Llama-3.2-1B's shape
# with a 50,257-token vocabulary, as ../shared/BENCHMARKS.md measured llama.cpp on) are written
# once by `dormouse make-gguf` into $BUILD/bench-models and reused; speed depends on shape and
# type only, not on the weights' values.
#
# Settings (environment): BUILD (build), SHARED (../shared), THREADS (2), REPS (3),
# ROUNDS (1: how many times each model's runs are repeated, alternating the targets),
# TARGETS ("": the CPU's best; e.g. "avx512 avx2" alternates them, see DORMOUSE_TARGET),
# MODELS (the shared models' names without .gguf, plus 1b-q8_0 and 1b-q4_k_m: all of them),
# DEPTH (4096; 0 skips the depth runs).
set -euo pipefail

BUILD=${BUILD:-build}
SHARED=${SHARED:-../shared}
THREADS=${THREADS:-2}
REPS=${REPS:-3}
ROUNDS=${ROUNDS:-1}
TARGETS=${TARGETS:-}
DEPTH=${DEPTH:-4096}
MODELS=${MODELS:-stories260K llama-58m-q8_0 llama-58m-q4_k_m qwen2-20m-q8_0 qwen2-20m-q4_0 \
qwen3-15m-q8_0 1b-q8_0 1b-q4_k_m}
BIN="$BUILD/dormouse"
GEN="$BUILD/bench-models"

[[ -x "$BIN" ]] || { echo "error: $BIN not found: build it first" >&2; exit 1; }

# The path of model $1, writing a 1B-shaped file first when it is one and missing.
model_path() {
  case "$1" in
    1b-*)
      local type=${1#1b-} out="$GEN/llama-1b-shape-${1#1b-}.gguf"
      if [[ ! -f "$out" ]]; then
        mkdir -p "$GEN"
        "$BIN" make-gguf -o "$out" --dim 2048 --layers 16 --heads 32 --kv-heads 8 --ffn 8192 \
          --vocab 50257 --rope-base 500000 --tied --ctx 131072 --type "${type^^}" >&2
      fi
      echo "$out"
      ;;
    *) echo "$SHARED/models/$1.gguf" ;;
  esac
}

# Targets this CPU lacks are named and skipped: AVX-512 is missing on most laptops.
if [[ -n "$TARGETS" ]]; then
  usable=""
  for target in $TARGETS; do
    if err=$("$BIN" bench --target "$target" --bandwidth -r 1 -t 1 2>&1 >/dev/null); then
      usable+=" $target"
    else
      echo "skipping target $target: ${err#error: }" >&2
    fi
  done
  [[ -n "$usable" ]] || { echo "error: no usable target in TARGETS=\"$TARGETS\"" >&2; exit 1; }
  TARGETS=${usable# }
fi

"$BIN" bench --bandwidth -t "$THREADS" -r "$REPS"
for name in $MODELS; do
  path=$(model_path "$name")
  for round in $(seq "$ROUNDS"); do
    for target in ${TARGETS:-default}; do
      flags=(-t "$THREADS" -r "$REPS" --bandwidth)
      [[ "$target" != default ]] && flags+=(--target "$target")
      label="$name"
      [[ "$target" != default ]] && label+=" ($target)"
      ((ROUNDS > 1)) && label+=", round $round"
      echo "== $label"
      "$BIN" bench "$path" -p 512 -n 128 "${flags[@]}"
      if ((DEPTH > 0)); then "$BIN" bench "$path" -p 512 -n 128 -d "$DEPTH" "${flags[@]}"; fi
    done
  done
done
