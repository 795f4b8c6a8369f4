#!/usr/bin/env bash
# Builds the second third-party proxy of bench/compare.sh: rcproxy, the crate clia-rcproxy
# 2.2.1 from crates.io (a fork of wayslog/aster; Rust, tokio 0.1; MIT). compare.sh runs it
# in its standalone ("proxy", twemproxy-like) mode, cache_type = "redis", one backend.
# Its dependencies are from 2019-2022: without --locked, cargo picks time 0.1.45, whose
# Duration no longer matches actix-http 0.2 and the build fails (E0277 "cannot subtract
# `TimeDelta` from `Tm`"); the crate's own Cargo.lock (time 0.1.44) builds with rustc 1.95.
# Nothing here touches respgate's target/: the build has its own target dir.
# Usage: bench/build_other_proxy.sh
#   RCPROXY_ROOT   install root (default ${XDG_CACHE_HOME:-$HOME/.cache}/respgate-bench/rcproxy);
#                  the binary lands in $RCPROXY_ROOT/bin/rcproxy, where compare.sh looks
#   RCPROXY_TARGET cargo target dir (default $RCPROXY_ROOT-target)
# About 5 minutes on two busy cores (-j 1).
set -euo pipefail
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/respgate-bench
ROOT=${RCPROXY_ROOT:-$CACHE/rcproxy}
TARGET=${RCPROXY_TARGET:-$ROOT-target}
CARGO_TARGET_DIR="$TARGET" cargo install clia-rcproxy --version 2.2.1 --locked \
  --root "$ROOT" -j "${JOBS:-1}"
"$ROOT/bin/rcproxy" --help | head -n 1   # its --version flag wants a config file
echo "built $ROOT/bin/rcproxy"
