#!/usr/bin/env python3
"""Fail when a tracked source file is over 700 lines.

Rule: every file git tracks that ends in .rs, .js, .py or .sh has at most
MAX_LINES lines. A file that grows past it holds more than one concern: split it
by concern (a module folder whose mod.rs re-exports what callers use, an
`impl` block per endpoint group, a test module per flow) rather than raising
the limit.

Why: a file is read and reviewed as a whole; past a few hundred lines it is no
longer one thing, and the layering the architecture promises (ARCHITECTURE.md)
is checked between modules, so a module that is a heap of concerns escapes it.

Exempt: nothing today. A generated or data file that must be longer goes in
EXEMPT below with the reason it cannot be split.

Usage: file_sizes.py   (from anywhere in the repository; run by tests/run.sh in
the module-cycle step). Exit status 1 and the list of files over the limit.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 700
PATTERNS = ["*.rs", "*.js", "*.py", "*.sh"]

# path (relative to the repository root) -> why it may be longer than MAX_LINES.
EXEMPT: dict[str, str] = {}


def tracked_files():
    out = subprocess.run(
        ["git", "ls-files", "-z", "--", *PATTERNS],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout
    return [p for p in out.decode().split("\0") if p]


def line_count(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for _ in f)


def main() -> int:
    try:
        files = tracked_files()
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"file_sizes.py: cannot list the tracked files with git: {e}")
        return 1
    over = []
    for rel in files:
        path = ROOT / rel
        # Tracked but deleted in the working tree: nothing to measure.
        if not path.is_file():
            continue
        n = line_count(path)
        if n > MAX_LINES and rel not in EXEMPT:
            over.append((n, rel))
    if over:
        print(f"{len(over)} tracked file(s) over {MAX_LINES} lines (one concern per file; split by concern):")
        for n, rel in sorted(over, reverse=True):
            print(f"  {rel}: {n} lines")
        return 1
    print(f"no tracked .rs/.js/.py/.sh file over {MAX_LINES} lines ({len(files)} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
