#!/usr/bin/env bash
# The soak tests of tests/soak.rs run longer: each topology (standalone restart, Sentinel
# failover, cluster master kill, cluster reshard back and forth, SIGTERM under load) for SECS
# seconds, their figures printed.
# Usage: scripts/soak.sh [secs=600]   (needs what scripts/test.sh installs)
set -euo pipefail
cd "$(dirname "$0")/.."
RESPGATE_SOAK_SECS="${1:-600}" cargo test --release --test soak -- --nocapture --test-threads 1
