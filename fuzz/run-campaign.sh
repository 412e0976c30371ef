#!/usr/bin/env bash
# Runs every fuzz target (or those named in TARGETS) for SECONDS seconds
# each (default 300), starting from the committed seeds:
#   fuzz/run-campaign.sh [SECONDS] ["TARGETS"]
# Needs the nightly toolchain and cargo-fuzz:
#   rustup toolchain install nightly && cargo install cargo-fuzz
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-300}"
cargo run -q --bin make_seeds
targets="${2:-sst_open log_read manifest_decode backup_catalog raft_records block_iter codec_decode bloom_decode ops}"
for t in $targets; do
  mkdir -p "corpus/$t"
  echo "== $t ($secs s)"
  # The operation target spends its time in engine threads, which
  # AddressSanitizer slows sixfold; the engine under it is safe Rust on an
  # in-memory file system, so it runs without a sanitizer.
  san=address
  [ "$t" = ops ] && san=none
  cargo +nightly fuzz run -s "$san" "$t" "corpus/$t" "seeds/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 2>&1 \
    | grep -E "^#[0-9]+[[:space:]]+DONE|ERROR|SUMMARY|panicked|Done [0-9]+ runs" || true
  if compgen -G "artifacts/$t/crash-*" >/dev/null || compgen -G "artifacts/$t/timeout-*" >/dev/null \
     || compgen -G "artifacts/$t/oom-*" >/dev/null; then
    echo "findings for $t in artifacts/$t"; exit 1
  fi
done
