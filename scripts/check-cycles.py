#!/usr/bin/env python3
"""Fails when the host's top-level modules import each other in a cycle.

Reads every `crate::MODULE` path in host/src, doc links included (plain
comments and `#[cfg(test)]` parts left out), builds the graph of
top-level modules (`http`, `supervisor`, `catalog`, ...) and prints each
strongly connected component of more than one module with the edges that
close it. Data flows one way (providers -> catalog -> supervisor ->
FFmpeg/nginx; events -> API): a cycle means two concerns have grown into
each other.

    scripts/check-cycles.py [SRC_DIR]     (default: host/src)
"""
import os
import re
import sys


def top_module(root, path):
    parts = os.path.relpath(path, root)[:-3].split(os.sep)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return parts[0] if parts else None


def graph(root):
    edges = {}
    for d, _, files in os.walk(root):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(d, f)
            top = top_module(root, path)
            if top is None:
                continue
            src = open(path, encoding="utf-8").read()
            cut = src.find("#[cfg(test)]")
            if cut >= 0:
                src = src[:cut]
            # Plain comments are left out; doc comments count (their
            # links are references as much as a `use` is).
            code = "\n".join(
                l for l in src.split("\n")
                if not (l.lstrip().startswith("//") and not l.lstrip().startswith(("///", "//!")))
            )
            for m in re.finditer(r"crate::([a-z_][a-z0-9_]*)", code):
                if m.group(1) != top:
                    edges.setdefault(top, set()).add(m.group(1))
    return edges


def cycles(edges):
    """Tarjan's strongly connected components of more than one node."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
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
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "host", "src")
    edges = graph(root)
    found = cycles(edges)
    for comp in found:
        print("import cycle between host modules: " + ", ".join(comp))
        for a in comp:
            print(f"  {a} -> {', '.join(sorted(edges[a] & set(comp)))}")
    if found:
        sys.exit(1)
    print(f"no import cycle between the {len(set(edges) | set().union(*edges.values()))} host modules")


if __name__ == "__main__":
    main()
