#!/usr/bin/env bash
# End-to-end tests: the real server driven by the official `openai` and `ollama` npm
# client libraries (pinned in package.json / package-lock.json, installed here, never
# globally). Usage: tests/e2e/run.sh PATH/TO/dormouse [TEST_DIR]
# TEST_DIR (default: this one) holds the *.test.mjs files and their package.json; the
# browser app's tests (tests/web) run through here too.
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ] || [ ! -x "$1" ]; then
  echo "usage: $0 PATH/TO/dormouse [TEST_DIR]" >&2
  exit 2
fi
BIN=$(realpath "$1")
HERE=$(cd "$(dirname "$0")" && pwd)
MODELS=${DORMOUSE_MODELS:-$(realpath "$HERE/../../../shared/models")}
cd "${2:-$HERE}"

for tool in node npm; do
  if ! command -v "$tool" >/dev/null; then
    echo "e2e: '$tool' is missing (Node.js 18 or newer with npm is needed)" >&2
    exit 1
  fi
done
# Installed when missing or older than the lockfile. No package may download a browser.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 PUPPETEER_SKIP_DOWNLOAD=1
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  if [ -f package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
  else
    npm install --no-audit --no-fund --loglevel=error
  fi
fi

WORK=$(mktemp -d)
PID=""
cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN" serve --port 0 --models-dir "$MODELS" --data-dir "$WORK/data" -t 2 2>"$WORK/server.log" &
PID=$!
URL=""
for _ in $(seq 1 200); do
  URL=$(grep -o 'listening on http://[^ ]*' "$WORK/server.log" | head -1 | cut -d' ' -f3 || true)
  [ -n "$URL" ] && break
  if ! kill -0 "$PID" 2>/dev/null; then break; fi
  sleep 0.1
done
if [ -z "$URL" ]; then
  echo "e2e: the server did not start:" >&2
  cat "$WORK/server.log" >&2
  exit 1
fi

export DORMOUSE_URL=$URL DORMOUSE_BIN=$BIN DORMOUSE_MODELS=$MODELS DORMOUSE_SERVER_PID=$PID
status=0
node --test --test-concurrency=1 ./*.test.mjs || status=$?

kill -TERM "$PID"
if ! wait "$PID"; then
  echo "e2e: the server did not exit cleanly on SIGTERM:" >&2
  status=1
fi
PID=""
if [ $status -ne 0 ]; then
  echo "---- server log ----" >&2
  cat "$WORK/server.log" >&2
fi
exit $status
