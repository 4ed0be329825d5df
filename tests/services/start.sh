#!/usr/bin/env bash
# Start DynamoDB Local and moto (SQS) by hand, for a developer's own cargo test / serve runs:
#
#   eval "$(tests/services/start.sh)"     # installs into .cache/ if needed, prints the exports
#   cargo test --workspace                 # or: cargo run -p migrations -- serve --store dynamodb --queue sqs --init
#   tests/services/stop.sh
#
# The services keep running until stop.sh; their logs are in .cache/services/.
set -euo pipefail
# shellcheck source=tests/services/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
STATE="$FM_CACHE/services"
if [ -f "$STATE/env.sh" ]; then
    fm_log "already running (tests/services/stop.sh stops them)"
    cat "$STATE/env.sh"
    exit 0
fi
fm_ensure_all
if ! fm_start_services "$STATE"; then
    fm_stop_services "$STATE"
    exit 1
fi
cat "$STATE/env.sh"
