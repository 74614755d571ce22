#!/usr/bin/env bash
# The long soak: tests/zswap_soak.rs (3 threads, shrink worker and writeback
# running, a device failing or tearing 1% of writes each, every page checked)
# at OPS operations in a release build. CI runs it at 300,000 in debug.
# Usage: scripts/soak.sh [OPS]   (default 10,000,000)
set -euo pipefail
cd "$(dirname "$0")/.."
ops="${1:-10000000}"
echo "soak: $ops operations"
start=$(date +%s)
ZSWAP_SOAK_OPS="$ops" cargo test --release --test zswap_soak -- --nocapture
echo "soak: done in $(( $(date +%s) - start )) s"
