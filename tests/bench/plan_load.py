#!/usr/bin/env python3
"""Cost of plan generation through `migrations serve` (embedded store), measured
against the same work done by `migrations plan` as a whole process, on one
machine in one run. A benchmark, not a test: it prints figures and ratios.

    cargo build --release -p migrations
    cargo run --release -p planning --example plan_fixtures -- /tmp/plan-10k 10000 10
    python3 tests/bench/plan_load.py target/release/migrations /tmp/plan-10k

Prints:
- the CLI's whole-process time (median of 3) and one POST …/migration-plan end to
  end (median of 3) on the same files, and their ratio (target: POST within 2.5x);
- 8 concurrent POSTs of the same large plan: their statuses (one 201, the rest
  409) and the server's peak RSS (VmHWM; target under 600 MB);
- GET …/summary and …/deployment-status of that plan (they read its header and
  summary only);
- the embedded data file's size with one stored plan, and after 64 more POSTs of
  the same plan that are refused (the pair is taken): refused requests must not
  grow it.
Only loopback traffic; everything is bounded in count and stops by itself.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid

TENANT = "6f1c2b1e-8a43-4f0e-9a55-0c0e8f1e2d3c"


def call(base, method, path, body=None, timeout=300):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("X-Tenant-ID", TENANT)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main():
    binary, fixtures = sys.argv[1], sys.argv[2]
    v1_path, v2_path = os.path.join(fixtures, "v1.json"), os.path.join(fixtures, "v2.json")
    v1, v2 = json.load(open(v1_path)), json.load(open(v2_path))

    cli = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run([binary, "plan", "--from", v1_path, "--to", v2_path, "--format", "json"],
                       stdout=subprocess.DEVNULL, check=True)
        cli.append(time.perf_counter() - t0)
    cli_s = statistics.median(cli)

    def serve():
        data_dir = tempfile.mkdtemp(prefix="plan-load-")
        server = subprocess.Popen([binary, "serve", "--port", "0", "--data-dir", data_dir],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        base = server.stdout.readline().strip().removeprefix("listening on ")
        scenario = str(uuid.uuid4())
        status, _ = call(base, "PUT", f"/scenarios/{scenario}", v1)
        assert status == 201, status
        return server, base, f"/scenarios/{scenario}/migration-plan", os.path.join(data_dir, "migrations.redb")

    # 1. One POST end to end against the CLI's whole process.
    server, base, path, _ = serve()
    try:
        posts = []
        for _ in range(3):
            t0 = time.perf_counter()
            status, plan = call(base, "POST", path, {"new_scenario": v2})
            posts.append(time.perf_counter() - t0)
            assert status == 201, (status, plan)
            reads = {}
            for name in ("summary", "deployment-status"):
                times = []
                for _ in range(5):
                    t0 = time.perf_counter()
                    status, _ = call(base, "GET", f"/migration-plans/{plan['id']}/{name}")
                    times.append(time.perf_counter() - t0)
                    assert status == 200, status
                reads[name] = statistics.median(times)
            call(base, "POST", f"/migration-plans/{plan['id']}/reject", {})
        post_s = statistics.median(posts)
        print("reads of that plan: " + ", ".join(f"GET {k} {v * 1000:.1f} ms" for k, v in reads.items())
              + " (they never load the transformation map)")
        print(f"plan of {len(v2['steps'])} steps: CLI whole process {cli_s:.3f} s, "
              f"POST end to end {post_s:.3f} s, ratio {post_s / cli_s:.2f} (target <= 2.5)")
    finally:
        server.terminate()
        server.wait(timeout=30)

    # 2. A fresh process: 8 concurrent POSTs of the same large plan, its peak RSS;
    #    then 8 more waves of 8 (all refused: the pair is taken) and the file's growth.
    server, base, path, db = serve()
    try:
        def wave():
            results = []
            threads = [threading.Thread(target=lambda: results.append(
                call(base, "POST", path, {"new_scenario": v2})[0])) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return sorted(results)
        rss_idle = peak_rss_mb(server.pid)
        t0 = time.perf_counter()
        statuses = wave()
        elapsed = time.perf_counter() - t0
        print(f"8 concurrent POSTs on a fresh server: statuses {statuses} in {elapsed:.2f} s; "
              f"peak RSS {peak_rss_mb(server.pid):.0f} MB (idle {rss_idle:.0f} MB; target < 600)")
        size_after_one = os.path.getsize(db) / 1e6
        refused = []
        for _ in range(8):
            refused += wave()
        size_after = os.path.getsize(db) / 1e6
        print(f"embedded file: {size_after_one:.1f} MB with the plan stored, {size_after:.1f} MB after "
              f"64 more POSTs of it ({refused.count(409)} refused with 409); peak RSS now "
              f"{peak_rss_mb(server.pid):.0f} MB")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
