#!/usr/bin/env python3
"""Fail on a module cycle inside any crate of the workspace.

Rule: among the child modules of any one module, the "uses" relation has no cycle.
Child A uses child B when code anywhere under A (its file, its submodules) names
something under B through `crate::…`, `super::…` or `self::…` paths, in `use`
declarations or inline. References from a module to its own ancestors (a child
naming `super::Item` of its parent) are not sibling edges: a parent that declares
its children and re-exports them is the normal Rust shape.

Why: a cycle means neither module can be understood, tested or moved without the
other; the layering the architecture promises (ARCHITECTURE.md) holds only if
nothing loops back.

Usage: module_cycles.py [crate_src_dir ...]   (default: every src/ of the workspace)
Exit status 1 and a list of the cycles when there is one.
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def crate_sources():
    for cargo in sorted(ROOT.glob("**/Cargo.toml")):
        if any(p in (".cache", "target") for p in cargo.relative_to(ROOT).parts):
            continue
        src = cargo.parent / "src"
        if (src / "lib.rs").exists() or (src / "main.rs").exists():
            yield src


def module_files(src: Path):
    """Map module path (tuple) -> file, for file-based modules under src."""
    modules = {}
    for f in src.rglob("*.rs"):
        rel = f.relative_to(src).with_suffix("")
        parts = list(rel.parts)
        if parts in (["lib"], ["main"]):
            parts = []
        elif parts[-1] == "mod":
            parts = parts[:-1]
        elif len(parts) == 1 and parts[0] != "lib" and (src / "lib.rs").exists() is False and (src / "main.rs").exists():
            pass
        # Binaries under src/bin are crates of their own.
        if parts and parts[0] == "bin":
            continue
        modules[tuple(parts)] = f
    return modules


COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
STRING = re.compile(r'r#*"(?:.|\n)*?"#*|"(?:\\.|[^"\\])*"')
USE = re.compile(r"\buse\s+([^;]+);")
INLINE = re.compile(r"\b((?:crate|super|self)(?:::\w+)+)")


def expand_use(tree: str):
    """Expand a use tree (`a::{b, c::{d, e}}`) into flat paths."""
    tree = re.sub(r"\s+", "", tree)
    out = []

    def walk(prefix, text):
        # Split `text` at top-level commas.
        depth, start, items = 0, 0, []
        for i, ch in enumerate(text):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                items.append(text[start:i])
                start = i + 1
        items.append(text[start:])
        for item in items:
            if not item:
                continue
            brace = item.find("{")
            if brace >= 0 and item.endswith("}"):
                head = item[:brace].rstrip(":")
                walk(prefix + ([head] if head else []), item[brace + 1 : -1])
            else:
                item = re.sub(r"\bas\b.*$", "", item)
                out.append("::".join(prefix + [item]))

    walk([], tree)
    return [p.replace("::::", "::") for p in out]


def references(module, text):
    """Absolute module-ish paths (tuples) a module's text names."""
    text = STRING.sub('""', COMMENT.sub("", text))
    paths = []
    for m in USE.finditer(text):
        body = m.group(1)
        if body.startswith("pub"):
            body = re.sub(r"^pub(\([^)]*\))?\s*", "", body)
        paths.extend(expand_use(body))
    paths.extend(m.group(1) for m in INLINE.finditer(text))
    resolved = []
    for p in paths:
        parts = [x for x in p.split("::") if x]
        if not parts:
            continue
        base = list(module)
        if parts[0] == "crate":
            base, parts = [], parts[1:]
        elif parts[0] in ("super", "self"):
            while parts and parts[0] in ("super", "self"):
                if parts[0] == "super":
                    if not base:
                        break
                    base = base[:-1]
                parts = parts[1:]
        else:
            continue
        resolved.append(tuple(base + parts))
    return resolved


def longest_module(path, modules):
    for n in range(len(path), -1, -1):
        if path[:n] in modules:
            return path[:n]
    return ()


def sccs(nodes, edges):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(comp)

    for v in nodes:
        if v not in index:
            strong(v)
    return out


def cycles_in(src: Path):
    modules = module_files(src)
    # Edges between module files (resolved to the deepest file module named).
    uses = {}
    for module, f in modules.items():
        targets = set()
        for path in references(module, f.read_text()):
            target = longest_module(path, modules)
            if target != module:
                targets.add(target)
        uses[module] = targets
    found = []
    parents = {m[:-1] for m in modules if m}
    for parent in sorted(parents):
        children = sorted({m[: len(parent) + 1] for m in modules if len(m) > len(parent) and m[: len(parent)] == parent})
        edges = {}
        evidence = {}
        for a in children:
            for module, targets in uses.items():
                if module[: len(a)] != a:
                    continue
                for t in targets:
                    if len(t) <= len(parent) or t[: len(parent)] != parent:
                        continue
                    b = t[: len(parent) + 1]
                    if b != a:
                        edges.setdefault(a, set()).add(b)
                        evidence.setdefault((a, b), (module, t))
        for comp in sccs(children, edges):
            if len(comp) > 1:
                comp = sorted(comp)
                lines = []
                for a in comp:
                    for b in comp:
                        if (a, b) in evidence:
                            m, t = evidence[(a, b)]
                            lines.append(f"      {'::'.join(a)} -> {'::'.join(b)}  ({modules[m].relative_to(ROOT)} names {'::'.join(t)})")
                found.append((parent, comp, lines))
    return found


def main(argv):
    sources = [Path(a).resolve() for a in argv] or list(crate_sources())
    bad = 0
    for src in sources:
        for parent, comp, lines in cycles_in(src):
            bad += 1
            where = "::".join(parent) or "crate root"
            print(f"cycle in {src.parent.relative_to(ROOT)} under {where}: {' <-> '.join('::'.join(c) for c in comp)}")
            print("\n".join(lines))
    if bad:
        print(f"{bad} module cycle(s)")
        return 1
    print(f"no module cycles in {len(sources)} crates")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
