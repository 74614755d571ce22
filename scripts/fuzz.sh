#!/usr/bin/env bash
# A fuzz campaign on one target, with its summary line appended to
# fuzz/logs/campaigns.txt (executions, coverage, corpus, crashes).
# Usage: scripts/fuzz.sh TARGET SECONDS [none|address]
#   none     cargo fuzz run -s none (stable; the default)
#   address  AddressSanitizer (RUSTC_BOOTSTRAP=1, its own target dir)
# A crash leaves its input in fuzz/artifacts/TARGET/; copy it into
# fuzz/regressions/TARGET/ with the fix so `cargo test` replays it.
set -uo pipefail
cd "$(dirname "$0")/../fuzz"
target="$1"; secs="$2"; san="${3:-none}"
mkdir -p logs "corpus/$target"
log="logs/$target-$san.log"
if [ "$san" = address ]; then
  export RUSTC_BOOTSTRAP=1
  args=(-s address --target-dir target/asan)
else
  args=(-s none)
fi
# The C codecs (liblz4, libzstd) are built by cc: with clang, instrument them
# for libFuzzer too, or their fuzzing is blind (57 edges for libzstd without,
# 1,879 with, in a 60 s trial). apt-get install clang.
if command -v clang >/dev/null; then
  export CC=clang CFLAGS="-fsanitize=fuzzer-no-link"
  [ "$san" = address ] && export CFLAGS="-fsanitize=fuzzer-no-link -fsanitize=address"
fi
start=$(date +%s)
cargo fuzz run "${args[@]}" "$target" "corpus/$target" -- \
  -max_total_time="$secs" -rss_limit_mb=4096 -print_final_stats=1 >"$log" 2>&1
rc=$?
wall=$(( $(date +%s) - start ))
execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
corp=$(grep -o 'corp: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
crashes=$(ls "artifacts/$target" 2>/dev/null | wc -l)
line="$(date -u +%F) $target san=$san rc=$rc wall=${wall}s execs=${execs:-?} cov=${cov:-?} corpus=${corp:-?} artifacts=$crashes"
echo "$line" | tee -a logs/campaigns.txt
exit $rc
