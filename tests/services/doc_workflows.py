#!/usr/bin/env python3
"""Run the workflows the docs describe, as written: a step of tests/run.sh.

    python3 tests/services/doc_workflows.py              # every workflow, in order
    python3 tests/services/doc_workflows.py --only lambda --only readme
    python3 tests/services/doc_workflows.py --list       # the workflows, their blocks, the substitutions

A shell block of README.md or docs/*.md takes part when the line just before it (blank lines
aside) is an HTML comment naming it:

    <!-- workflow: tour -->
    ```sh
    ...
    ```

WORKFLOWS below puts the blocks in order. Each block runs in a fresh `bash` with
`set -euo pipefail`, as if typed into a new terminal (nothing is carried over from an earlier
block), from the repository root unless said otherwise; its exit status must be 0. A *server*
block ends in a command that runs until Ctrl-C (`migrations serve`, `cargo lambda watch`): it
runs in the background until its address answers HTTP, and gets Ctrl-C (SIGINT to its process
group) before the first block marked `after_ctrl_c` or at the end of its workflow.

Expected output: where a block's comment shows JSON (a `# ` comment containing `{"`), the text
from its first `{` to its last `}`, split at `...`/`…`, must appear piece by piece in what the
block printed.

Substitutions: where the doc's exact command would cost a whole extra build in the suite (the
`local` profile, `--release`, criterion's timed runs, a 10⁶-session benchmark), use a port
other than the suite's free ones, or touch the developer's own emulators, SUBSTITUTIONS
replaces that text — nothing else is changed, and every substitution applied is printed.
A substitution that no longer matches its block is an error: the table must follow the docs.

Every workflow gets a fresh free loopback port and a fresh folder; everything it started
(servers, the emulators of tests/services/start.sh) is stopped when it ends, also on failure
or a signal. The suite's own emulator variables (AWS_*, FOCAL_*, the table and queue names)
are removed from the environment the blocks see: a block gets what the doc gives it.
python3 standard library only.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FM_CACHE = Path(os.environ.get("FM_CACHE") or ROOT / ".cache")
TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
BIN = TARGET / "debug" / "migrations"
# tests/services/start.sh keeps the state of the emulators it starts here.
SERVICES_ENV = FM_CACHE / "services" / "env.sh"
MARKER = re.compile(r"^<!--\s*workflow:\s*([a-z0-9-]+)\s*-->\s*$")
FENCE_OPEN = re.compile(r"^```(sh|bash|shell)\s*$")


@dataclass
class Step:
    block: str
    # A server block: the path that answers HTTP once it is up, on the workflow's port.
    ready: str | None = None
    # Run in a fresh empty folder instead of the repository root (`./data` of `serve`).
    fresh_dir: bool = False
    # Ctrl-C the workflow's servers before this block (the doc says so).
    after_ctrl_c: bool = False
    timeout: float = 300.0


@dataclass
class Workflow:
    name: str
    title: str
    steps: list[Step]


WORKFLOWS = [
    Workflow(
        "readme",
        "README: the run command, then the five-minute tour against it",
        [Step("readme-serve", ready="/health", fresh_dir=True, timeout=60), Step("tour", timeout=60)],
    ),
    Workflow(
        "dynamodb",
        "docs/configuration.md: serve on DynamoDB Local and moto, the README tour against it",
        [
            Step("dynamodb-serve", ready="/health", timeout=180),
            Step("tour", timeout=120),
            Step("dynamodb-stop", after_ctrl_c=True, timeout=60),
        ],
    ),
    Workflow(
        "lambda",
        "docs/operations.md: the local Lambda workflow (cargo lambda watch and invoke)",
        [
            # A path of no route: watch answers it itself, without building a function.
            Step("lambda-watch", ready="/doc-workflows/ready", timeout=180),
            # The first request makes `cargo lambda watch` build the function.
            Step("lambda-calls", timeout=600),
            Step("lambda-stop", after_ctrl_c=True, timeout=60),
        ],
    ),
    Workflow(
        "benchmarks",
        "docs/benchmarks.md: the benchmark commands, in short forms",
        [Step("bench-commands", timeout=600)],
    ),
]

# block -> [(the doc's text, what runs instead, why)]. In the replacement, {bin} is the
# suite's debug build of `migrations`, {target} the cargo target folder, {port} the workflow's
# free port and {work} its fresh folder.
DEBUG_BUILD = (
    "the suite's debug build (tests/run.sh built it): `cargo run -p migrations` builds the "
    "crate with the feature set of that one package, not the workspace's, a second build"
)
SUBSTITUTIONS: dict[str, list[tuple[str, str, str]]] = {
    "readme-serve": [
        (
            "cargo run --profile local -p migrations -- serve",
            "{bin} serve --port {port}",
            "the suite's debug build instead of a build of the `local` profile (minutes); "
            "a free port instead of 8080",
        ),
    ],
    "tour": [("http://127.0.0.1:8080", "http://127.0.0.1:{port}", "the server's free port")],
    "dynamodb-serve": [
        ("cargo run -p migrations -- serve", "{bin} serve --port {port}", DEBUG_BUILD + "; a free port instead of 8080"),
    ],
    "lambda-watch": [
        ("cargo run -p migrations -- init", "{bin} init", DEBUG_BUILD),
        (
            "cargo lambda watch",
            "CARGO={work}/cargo-for-watch cargo-lambda lambda watch --ignore-changes "
            "--invoke-address 127.0.0.1 --invoke-port {port}",
            "its `cargo run --bin FUNCTION` runs the suite's debug build of the function "
            "(CARGO names a wrapper: cargo-lambda runs the cargo it names; `cargo lambda` would "
            "set it back): built as watch builds it, with the default members' features, the "
            "functions and the whole async stack under them (tokio, hyper-util, rustls, the AWS "
            "SDK clients) would be compiled a second time, minutes; a free loopback port instead "
            "of port 9000 on every interface; no rebuild when a file of the checkout changes",
        ),
    ],
    "lambda-calls": [
        ("localhost:9000", "127.0.0.1:{port}", "the free port of `cargo lambda watch`"),
        (
            "cargo lambda invoke",
            "cargo lambda invoke --invoke-address 127.0.0.1 --invoke-port {port}",
            "the free port of `cargo lambda watch`",
        ),
    ],
    "bench-commands": [
        (
            "cargo bench -p planning --bench plan ",
            "cargo test --workspace --bench plan ",
            "each benchmark once in the test profile, not criterion's timed runs in the bench "
            "profile (a fat-LTO build and minutes of measuring); selected in the whole workspace "
            "so that the dependencies are those the suite built (`-p planning` alone resolves "
            "other features of planning, serde, regex, …)",
        ),
        (
            "cargo bench -p planning --bench reconcile ",
            "cargo test --workspace --bench reconcile ",
            "as above",
        ),
        (
            "cargo run --release -p planning --example plan_fixtures --",
            "{target}/debug/examples/plan_fixtures",
            "the suite's debug build of the example instead of a release build",
        ),
        ("/tmp/plan-10k", "{work}/plan-10k", "a fresh folder instead of a fixed one in /tmp"),
        (
            "cargo build --release -p migrations",
            "true",
            "no release build (fat LTO, minutes): the suite's debug build runs the plan",
        ),
        ("target/release/migrations", "{bin}", "the suite's debug build"),
        (
            "cargo run --release -p e2e --example marking_bench -- --sessions 10000,100000",
            "{target}/debug/examples/marking_bench --sessions 300",
            "the suite's debug build of the example; 300 sessions instead of 10,000 and 100,000",
        ),
        (
            "cargo run -p e2e --example marking_bench -- --sessions 100000 --withdraw yes",
            "{target}/debug/examples/marking_bench --sessions 300 --withdraw yes",
            "the suite's debug build of the example; 300 sessions instead of 100,000",
        ),
        (
            "cargo run -p e2e --example scale -- --sessions 1000000 --baseline",
            "{target}/debug/examples/scale --sessions 1000 --baseline --reconciles 200",
            "the suite's debug build of the example (`-p e2e` alone builds another feature "
            "set); 1,000 sessions and 200 reconciles instead of 10⁶ and 5,000",
        ),
    ],
}


# What cargo-lambda watch runs as `cargo` (the substitution of `cargo lambda watch` above).
CARGO_FOR_WATCH = """#!/usr/bin/env bash
# cargo as `cargo lambda watch` calls it: `cargo run ... --bin NAME` runs the suite's debug
# build of NAME (tests/services/doc_workflows.py); every other command is cargo's own.
if [ "${1:-}" = run ]; then
    prev=""
    for arg in "$@"; do
        if [ "$prev" = --bin ]; then
            echo "doc-workflows: runs {target}/debug/$arg instead of: cargo $*" >&2
            exec "{target}/debug/$arg"
        fi
        prev="$arg"
    done
fi
exec cargo "$@"
"""


# With --watch-builds, `cargo lambda watch` builds the functions itself, as written.
WATCH_AS_WRITTEN = (
    "cargo lambda watch",
    "cargo lambda watch --ignore-changes --invoke-address 127.0.0.1 --invoke-port {port}",
    "--watch-builds: watch builds the functions itself; a free loopback port instead of port "
    "9000 on every interface; no rebuild when a file of the checkout changes",
)
WATCH_BUILDS = False


class Failure(Exception):
    pass


class Stopped(BaseException):
    """A signal asked the script to stop; cleanup still runs."""


def on_signal(signum, _frame):
    raise Stopped(signal.Signals(signum).name)


@dataclass
class Block:
    id: str
    path: Path
    line: int  # line of the block's first command in its file
    text: str


def extract_blocks() -> dict[str, Block]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    blocks: dict[str, Block] = {}
    for path in files:
        lines = path.read_text(encoding="utf-8").splitlines()
        i = 0
        while i < len(lines):
            m = MARKER.match(lines[i].strip())
            i += 1
            if not m:
                continue
            name = m.group(1)
            where = f"{path.relative_to(ROOT)}:{i}"
            while i < len(lines) and not lines[i].strip():
                i += 1
            if i >= len(lines) or not FENCE_OPEN.match(lines[i].strip()):
                raise Failure(f"{where}: the marker `workflow: {name}` is not followed by a ```sh block")
            i += 1
            start = i
            while i < len(lines) and lines[i].strip() != "```":
                i += 1
            if i >= len(lines):
                raise Failure(f"{where}: the block of `workflow: {name}` is not closed")
            if name in blocks:
                other = blocks[name]
                raise Failure(f"{where}: `workflow: {name}` also marks {other.path.relative_to(ROOT)}:{other.line}")
            blocks[name] = Block(name, path, start + 1, "\n".join(lines[start:i]) + "\n")
    return blocks


def expected_fragments(text: str) -> list[str]:
    """The pieces of output a block's comments show (see the module's docstring)."""
    fragments = []
    for line in text.splitlines():
        m = re.search(r"(?:^|\s)#\s(.*)$", line)
        if not m or '{"' not in m.group(1):
            continue
        comment = m.group(1)
        shown = comment[comment.index("{") : comment.rindex("}") + 1]
        for piece in re.split(r"\.\.\.|…", shown):
            piece = piece.strip(' ,"')
            if len(piece) > 1:
                fragments.append(piece)
    return fragments


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Loopback addresses are asked directly, whatever proxy the environment names.
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def answers(url: str) -> bool:
    try:
        DIRECT.open(url, timeout=2)
    except urllib.error.HTTPError:
        pass
    except Exception:
        return False
    return True


def base_env() -> dict[str, str]:
    """The environment of a new terminal: without the suite's emulator and test settings."""
    drop = {"MIGRATIONS_TABLE", "SESSIONS_TABLE", "MARKING_QUEUE_URL", "PORT", "RUST_LOG"}
    return {k: v for k, v in os.environ.items() if not (k.startswith(("AWS_", "FOCAL_")) or k in drop)}


def tail(path: Path, lines: int = 40, chars: int = 4000) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return "(no output)"
    shown = "\n".join(text[-lines:])
    # The tour prints its JSON answers without a newline between them.
    return ("…" + shown[-chars:] if len(shown) > chars else shown) or "(empty)"


def stop_group(proc: subprocess.Popen, first=signal.SIGINT) -> None:
    """Ctrl-C the process group, then SIGTERM, then SIGKILL."""
    for sig, wait in ((first, 15), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    # Children the group's leader left behind (it exited on the first signal).
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class Run:
    def __init__(self, workflow: Workflow, blocks: dict[str, Block], reuse_emulators: bool):
        self.workflow = workflow
        self.blocks = blocks
        self.reuse = reuse_emulators
        self.port = free_port()
        self.work = Path(tempfile.mkdtemp(prefix=f"doc-{workflow.name}.", dir=FM_CACHE))
        wrapper = self.work / "cargo-for-watch"
        wrapper.write_text(CARGO_FOR_WATCH.replace("{target}", str(TARGET)), encoding="utf-8")
        wrapper.chmod(0o755)
        self.servers: list[tuple[str, subprocess.Popen]] = []
        self.current: subprocess.Popen | None = None
        self.times: list[tuple[str, float]] = []

    def log(self, message: str) -> None:
        print(f"[{self.workflow.name}] {message}", flush=True)

    def script(self, block: Block) -> str:
        text = block.text
        subs = list(SUBSTITUTIONS.get(block.id, []))
        if WATCH_BUILDS:
            subs = [WATCH_AS_WRITTEN if old == WATCH_AS_WRITTEN[0] else (old, new, why) for old, new, why in subs]
        if self.reuse and "tests/services/stop.sh" in text:
            subs.append(
                (
                    "tests/services/stop.sh",
                    "true",
                    "tests/services/start.sh's emulators were running before this run: they are "
                    "left running",
                )
            )
        values = {"{bin}": str(BIN), "{target}": str(TARGET), "{port}": str(self.port), "{work}": str(self.work)}
        for old, new, why in subs:
            count = text.count(old)
            if count == 0:
                raise Failure(
                    f"{block.path.relative_to(ROOT)}:{block.line}: substitution `{old}` no longer "
                    f"matches the block `{block.id}`: update SUBSTITUTIONS in {Path(__file__).name}"
                )
            for key, value in values.items():
                new = new.replace(key, value)
            text = text.replace(old, new)
            self.log(f"substituted in {block.id} ({count}x): `{old}` -> `{new}` ({why})")
        rel = block.path.relative_to(ROOT)
        # xtrace names the doc's line of each command (the script's line 2 is the block's first)
        # and the seconds since the block started.
        header = f"set -euo pipefail; PS4='+ [$SECONDS s] {rel}:$((LINENO + {block.line - 2})): '; set -x\n"
        return header + text

    def start(self, step: Step, block: Block) -> tuple[subprocess.Popen, Path, Path]:
        script = self.work / f"{block.id}.sh"
        script.write_text(self.script(block), encoding="utf-8")
        cwd = ROOT
        if step.fresh_dir:
            cwd = self.work / f"{block.id}.cwd"
            cwd.mkdir()
        env = base_env()
        if self.reuse:
            # The developer's emulators: tables of this run's own, not theirs.
            env["MIGRATIONS_TABLE"] = f"doc-{self.workflow.name}-{os.getpid()}-main"
            env["SESSIONS_TABLE"] = f"doc-{self.workflow.name}-{os.getpid()}-sessions"
        out, err = self.work / f"{block.id}.out", self.work / f"{block.id}.err"
        with open(out, "wb") as o, open(err, "wb") as e:
            proc = subprocess.Popen(
                ["bash", str(script)], cwd=cwd, env=env, stdout=o, stderr=e,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        return proc, out, err

    def fail(self, block: Block, what: str, out: Path, err: Path) -> Failure:
        rel = block.path.relative_to(ROOT)
        message = [
            f"{what}: block `{block.id}` ({rel}:{block.line})",
            f"--- its output (last lines of {out}) ---",
            tail(out),
            f"--- its commands and errors (last lines of {err}) ---",
            tail(err),
        ]
        for name, _ in self.servers:
            message += [f"--- server block `{name}` (last lines) ---", tail(self.work / f"{name}.out"), tail(self.work / f"{name}.err", 20)]
        return Failure("\n".join(message))

    def ctrl_c_servers(self) -> None:
        while self.servers:
            name, proc = self.servers.pop()
            stop_group(proc)
            self.log(f"Ctrl-C: {name} stopped")

    def run(self) -> float:
        t_workflow = time.monotonic()
        self.log(f"{self.workflow.title}; port {self.port}, folder {self.work}")
        for step in self.workflow.steps:
            block = self.blocks[step.block]
            rel = block.path.relative_to(ROOT)
            if step.after_ctrl_c:
                self.ctrl_c_servers()
            t0 = time.monotonic()
            proc, out, err = self.start(step, block)
            self.current = proc
            if step.ready:
                url = f"http://127.0.0.1:{self.port}{step.ready}"
                while not answers(url):
                    if proc.poll() is not None:
                        raise self.fail(block, f"exited with status {proc.returncode} before {url} answered", out, err)
                    if time.monotonic() - t0 > step.timeout:
                        stop_group(proc)
                        raise self.fail(block, f"{url} did not answer within {step.timeout:.0f} s", out, err)
                    time.sleep(0.3)
                self.servers.append((block.id, proc))
                self.current = None
                took = time.monotonic() - t0
                self.log(f"{block.id} ({rel}:{block.line}): serving at {url} after {took:.1f} s")
            else:
                try:
                    proc.wait(timeout=step.timeout)
                except subprocess.TimeoutExpired:
                    stop_group(proc, signal.SIGTERM)
                    raise self.fail(block, f"did not finish within {step.timeout:.0f} s", out, err)
                self.current = None
                took = time.monotonic() - t0
                if proc.returncode != 0:
                    raise self.fail(block, f"exit status {proc.returncode}", out, err)
                printed = out.read_text(encoding="utf-8", errors="replace")
                fragments = expected_fragments(block.text)
                missing = [f for f in fragments if f not in printed]
                if missing:
                    raise self.fail(block, f"the output the doc shows is missing: {missing}", out, err)
                checked = f", {len(fragments)} expected output piece(s) found" if fragments else ""
                self.log(f"{block.id} ({rel}:{block.line}): exit 0 in {took:.1f} s{checked}")
            self.times.append((block.id, took))
        self.ctrl_c_servers()
        return time.monotonic() - t_workflow

    def cleanup(self, emulators_before: bool, keep: bool) -> None:
        if self.current is not None:
            stop_group(self.current, signal.SIGTERM)
            self.current = None
        self.ctrl_c_servers()
        # start.sh writes each service's pid file as it starts it, env.sh once both are up.
        left = SERVICES_ENV.exists() or any(SERVICES_ENV.parent.glob("*.pid"))
        if not emulators_before and left:
            self.log("stopping the emulators the workflow left running (tests/services/stop.sh)")
            subprocess.run([str(ROOT / "tests/services/stop.sh")], cwd=ROOT, env=base_env(), check=False)
        if keep:
            self.log(f"kept {self.work}")
        else:
            shutil.rmtree(self.work, ignore_errors=True)


def check_table(blocks: dict[str, Block]) -> None:
    used = {step.block for w in WORKFLOWS for step in w.steps}
    unknown = sorted(used - blocks.keys())
    if unknown:
        raise Failure(f"no doc block is marked {unknown} (`<!-- workflow: NAME -->` before a ```sh block)")
    unused = sorted(blocks.keys() - used)
    if unused:
        where = ", ".join(f"{b} ({blocks[b].path.relative_to(ROOT)}:{blocks[b].line})" for b in unused)
        raise Failure(f"marked blocks no workflow runs: {where}")
    stale = sorted(SUBSTITUTIONS.keys() - used)
    if stale:
        raise Failure(f"SUBSTITUTIONS names blocks no workflow runs: {stale}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", metavar="WORKFLOW", help="run only these (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the workflows, blocks and substitutions")
    parser.add_argument("--keep", action="store_true", help="keep each workflow's folder (scripts, outputs)")
    parser.add_argument(
        "--watch-builds",
        action="store_true",
        help="let `cargo lambda watch` build the functions as written (minutes when its feature set is not built yet)",
    )
    args = parser.parse_args()
    global WATCH_BUILDS
    WATCH_BUILDS = args.watch_builds

    blocks = extract_blocks()
    check_table(blocks)
    names = [w.name for w in WORKFLOWS]
    for name in args.only or []:
        if name not in names:
            parser.error(f"unknown workflow {name} (one of {', '.join(names)})")
    chosen = [w for w in WORKFLOWS if not args.only or w.name in args.only]
    if args.list:
        for w in chosen:
            print(f"{w.name}: {w.title}")
            for step in w.steps:
                b = blocks[step.block]
                kind = "server" if step.ready else "run"
                print(f"  {kind:6} {b.id} ({b.path.relative_to(ROOT)}:{b.line})")
                for old, new, why in SUBSTITUTIONS.get(b.id, []):
                    print(f"         `{old}` -> `{new}`: {why}")
        return 0
    if not BIN.exists():
        raise Failure(f"{BIN} is missing: build first (cargo build --workspace --bins --tests --examples)")

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    FM_CACHE.mkdir(parents=True, exist_ok=True)
    # One run at a time per checkout: the workflows share tests/services/start.sh's emulators.
    lock = open(FM_CACHE / "doc_workflows.lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    emulators_before = SERVICES_ENV.exists()
    if emulators_before:
        print(f"[doc-workflows] {SERVICES_ENV} exists: the emulators of tests/services/start.sh are "
              "running; the workflows use them with tables of their own and leave them running")
    results = []
    for workflow in chosen:
        run = Run(workflow, blocks, emulators_before)
        try:
            results.append((workflow, run.run(), run.times))
        finally:
            run.cleanup(emulators_before, args.keep)
    print("\n[doc-workflows] all passed:")
    for workflow, took, times in results:
        parts = ", ".join(f"{b} {t:.1f} s" for b, t in times)
        print(f"  {workflow.name:11} {took:6.1f} s  ({parts})")
    print(f"  {'in all':11} {sum(t for _, t, _ in results):6.1f} s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Failure as e:
        print(f"[doc-workflows] FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    except Stopped as e:
        print(f"[doc-workflows] stopped by {e}", file=sys.stderr)
        sys.exit(130)
