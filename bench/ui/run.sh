#!/bin/sh
# bench/ui: the dashboard with 5,000 commits x 20 benchmarks in the store: the
# series API's p95 (target <= 50 ms) and, with Chromium, the repository page
# until its charts are drawn (bench/ui/page.mjs).  See bench/ui/run.mjs.
#   sh bench/ui/run.sh            (after `make`)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
[ -x "$root/build/perfbot" ] || { echo "bench/ui: build/perfbot missing: run make first"; exit 1; }
exec node "$root/bench/ui/run.mjs"
