#!/bin/sh
# Runs every fuzz target, one after the other, for SECONDS each (default 600), starting from
# the committed corpus; new inputs go to fuzz/corpus-full/<target>/ (not committed), crashes
# to fuzz/artifacts/<target>/, logs to fuzz/logs/<target>.log. Needs nightly and cargo-fuzz.
set -u
cd "$(dirname "$0")"
SECONDS_EACH=${1:-600}
TARGETS=${TARGETS:-"parser_raw parser_structured glob namespace replies config"}
mkdir -p logs
for t in $TARGETS; do
    mkdir -p "corpus-full/$t" "artifacts/$t"
    cargo +nightly fuzz run "$t" "corpus-full/$t" "corpus/$t" -- \
        -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -timeout=10 \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"logs/$t.log" 2>&1
    echo "$t exit $?" >>logs/summary.txt
done
