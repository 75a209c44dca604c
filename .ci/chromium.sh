#!/usr/bin/env bash
# Debian's Chromium for the report-page tests (Playwright drives it; its own browser download
# cannot work without the internet). Prints the line to eval:  eval "$(bash .ci/chromium.sh)"
#   export OPTLAB_TEST_CHROMIUM=/usr/bin/chromium     (the browser the tests start)
# Everything else goes to stderr. Installs chromium with apt-get when it is missing.
set -euo pipefail

find_chromium() { command -v chromium || command -v chromium-browser || true; }

BIN="$(find_chromium)"
if [ -z "$BIN" ]; then
  echo "chromium.sh: installing chromium" >&2
  (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium) >&2
  BIN="$(find_chromium)"
fi
[ -n "$BIN" ] || { echo "chromium.sh: no chromium after the install" >&2; exit 1; }
"$BIN" --version >&2
echo "export OPTLAB_TEST_CHROMIUM=$BIN"
