#!/usr/bin/env python3
"""Finds import circles between the source files of each crate.

A file imports another when it names an item through `crate::a::b`,
`super::x` or `self::x` paths (in `use` lines or inline paths) that resolve
to that file's module. `mod x;` declarations are not imports (a parent owns
its children), and `#[cfg(test)]` test files are skipped. Prints each circle
(strongly connected component of more than one file) and exits non-zero if
there is any.

Usage: scripts/import-cycles.py [crate-src-dir ...]   (default: every crate)
"""
import os
import re
import sys

PATH = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
USE_GROUP = re.compile(r"\buse\s+(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{([^;]*)\};", re.S)


def module_files(src):
    """Module path (tuple) -> file, for every .rs under src."""
    mods = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            p = os.path.join(root, f)
            rel = os.path.relpath(p, src)[:-3].split(os.sep)
            if rel in (["lib"], ["main"]):
                key = ()
            elif rel[-1] == "mod":
                key = tuple(rel[:-1])
            else:
                key = tuple(rel)
            if rel[-1].startswith("main") and len(rel) == 1:
                continue
            mods[key] = p
    return mods


def is_test_file(path, text):
    name = os.path.basename(path)
    return name == "tests.rs" or name.endswith("_tests.rs") or "/tests/" in path


def resolve(mods, here, base, segs):
    if base == "crate":
        cur = []
    elif base == "super":
        cur = list(here[:-1])
    else:
        cur = list(here)
    segs = list(segs)
    while segs and segs[0] == "super":
        cur = cur[:-1]
        segs.pop(0)
    best = None
    path = list(cur)
    for s in segs:
        path.append(s)
        if tuple(path) in mods:
            best = tuple(path)
        else:
            break
    return best


def strip_tests(text):
    # Drop `#[cfg(test)] mod tests { ... }` blocks (to the end of the file,
    # where they live by convention here).
    m = re.search(r"#\[cfg\(test\)\]\s*(pub(\(crate\))?\s+)?mod\s+\w+\s*\{", text)
    return text[: m.start()] if m else text


def edges(src):
    mods = module_files(src)
    out = {}
    for key, path in mods.items():
        with open(path) as f:
            text = strip_tests(f.read())
        if is_test_file(path, text):
            continue
        text = re.sub(r"//[^\n]*", "", text)
        here = key
        targets = set()
        for m in USE_GROUP.finditer(text):
            base, prefix = m.group(1), [s for s in m.group(2).split("::") if s]
            for item in re.split(r"[,\s{}]+", m.group(3)):
                item = item.split("::")[0]
                if item and item not in ("self", "*"):
                    t = resolve(mods, here, base, prefix + [item])
                    if t is not None:
                        targets.add(t)
            t = resolve(mods, here, base, prefix)
            if t is not None:
                targets.add(t)
        for m in PATH.finditer(text):
            segs = [s for s in m.group(2).split("::") if s]
            t = resolve(mods, here, m.group(1), segs)
            if t is not None:
                targets.add(t)
        targets.discard(key)
        # Importing an ancestor module's own file (lib.rs, mod.rs) is how
        # children reach shared items; count it like any other file.
        out[key] = {t for t in targets if t in mods and not is_test_file(mods[t], "")}
    return mods, out


def sccs(graph):
    index, low, stack, on, res = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
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
            res.append(comp)

    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            visit(v)
    return res


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    dirs = sys.argv[1:] or [
        os.path.join(root, c, "src")
        for c in sorted(os.listdir(root))
        if os.path.isfile(os.path.join(root, c, "Cargo.toml")) and os.path.isdir(os.path.join(root, c, "src"))
    ]
    bad = 0
    for src in dirs:
        mods, g = edges(src)
        for comp in sccs(g):
            if len(comp) > 1:
                bad += 1
                names = sorted(os.path.relpath(mods[c], root) for c in comp)
                print(f"circle: {' <-> '.join(names)}")
    if bad:
        print(f"{bad} import circle(s)")
        return 1
    print("no import circles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
