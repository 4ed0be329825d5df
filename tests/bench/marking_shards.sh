#!/usr/bin/env bash
# Marking throughput with 1 vs N shards of the step index, on its own DynamoDB
# Local + moto SQS: deploy → deployed sessions/s per shard count, against the raw conditional
# UpdateItem rate of the same endpoint at the same total concurrency (MARK_CONCURRENCY x shards).
# A benchmark, not a test: it prints figures and ratios (tests/bench/marking_bench.rs).
#
#   tests/bench/marking_shards.sh                      # 100,000 sessions, shards 1 and 8, 2 workers
#   SESSIONS=1000000 RAW_SESSIONS=100000 SHARDS=8 WORKERS=4 tests/bench/marking_shards.sh
#   PROFILE=release tests/bench/marking_shards.sh      # docs/benchmarks.md's figures, where noted
#
# Everything it starts (emulators, worker processes) stops when it exits.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=tests/services/lib.sh
source tests/services/lib.sh

SESSIONS="${SESSIONS:-100000}"
SHARDS="${SHARDS:-1,8}"
WORKERS="${WORKERS:-2}"
CONCURRENCY="${CONCURRENCY:-16}"
PAGE_SIZE="${PAGE_SIZE:-500}"
PROFILE="${PROFILE:-dev}"
# Chains each worker process holds at once (the product's MARK_WORKER_MESSAGES, default 4);
# 2 × 4 workers = the 8 chains of 8 shards, one per slot, as Lambda runs one per invocation.
export MARK_WORKER_MESSAGES="${MARK_WORKER_MESSAGES:-2}"
# Sessions of the raw baseline passes (default: as many as SESSIONS); a rate needs no 10⁶ writes.
RAW_SESSIONS="${RAW_SESSIONS:-$SESSIONS}"

profile_flag=()
[ "$PROFILE" = release ] && profile_flag=(--release)

# MARKING_BENCH_BIN: run that binary instead of building (a copy pinned while the tree is edited).
if [ -z "${MARKING_BENCH_BIN:-}" ]; then
    cargo build "${profile_flag[@]}" -p e2e --example marking_bench
fi

STATE="$(mktemp -d /tmp/marking-shards.XXXXXX)"
cleanup() { fm_stop_services "$STATE"; rm -rf "$STATE"; }
trap cleanup EXIT
fm_ensure_all
fm_start_services "$STATE"
# shellcheck disable=SC1091
source "$STATE/env.sh"

target_dir="target/debug"
[ "$PROFILE" = release ] && target_dir="target/release"
"${MARKING_BENCH_BIN:-$target_dir/examples/marking_bench}" \
    --sessions "$SESSIONS" --shards "$SHARDS" --workers "$WORKERS" \
    --concurrency "$CONCURRENCY" --page-size "$PAGE_SIZE" --seed-concurrency 16 \
    --raw-sessions "$RAW_SESSIONS"
