#!/usr/bin/env bash
# The long soaks, in a release build:
# - tests/zswap_soak.rs (3 threads, shrink worker and writeback running, a
#   device failing or tearing 1% of writes each, every page checked) at OPS
#   operations; CI runs it at 300,000 in debug;
# - tests/lifecycle_soak.rs (pools, areas, slots and spans churned on a
#   counting allocator, heap held flat) at SCALE times CI's cycles: 1,000 ×
#   SCALE area cycles, 100,000 × SCALE slots filled and drained, 10,000 ×
#   SCALE groups churned.
# Usage: scripts/soak.sh [OPS] [SCALE]   (defaults 10,000,000 and 10)
set -euo pipefail
cd "$(dirname "$0")/.."
ops="${1:-10000000}"
echo "soak: $ops operations"
start=$(date +%s)
ZSWAP_SOAK_OPS="$ops" cargo test --release --test zswap_soak -- --nocapture
scale="${2:-10}"
echo "lifecycle soak: scale $scale"
ZSWAP_LIFECYCLE_SCALE="$scale" cargo test --release --test lifecycle_soak -- --nocapture --test-threads=1
echo "soak: done in $(( $(date +%s) - start )) s"
