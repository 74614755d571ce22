#!/usr/bin/env bash
# Runs the loom models in loom-tests/ on the crate's real types.
# Usage: scripts/loom.sh [MAX_PREEMPTIONS]   (CI uses 2; 3 for a deeper run)
set -euo pipefail
cd "$(dirname "$0")/.."
preemptions="${1:-2}"
echo "loom: LOOM_MAX_PREEMPTIONS=$preemptions"
start=$(date +%s)
RUSTFLAGS="--cfg loom ${RUSTFLAGS:-}" LOOM_MAX_PREEMPTIONS="$preemptions" \
  cargo test -p zswap-loom-tests --release --target-dir target/loom -- --nocapture --test-threads=1
echo "loom: done in $(( $(date +%s) - start )) s"
