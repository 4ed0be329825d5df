#!/usr/bin/env bash
# Stop the services that tests/services/start.sh started.
set -euo pipefail
# shellcheck source=tests/services/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fm_stop_services "$FM_CACHE/services"
fm_log "stopped"
