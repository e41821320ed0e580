#!/usr/bin/env python3
"""Checks that flusso's sources keep their layers: no circle, calls go down.

It reads src/ and draws two graphs between its files:
  - includes: a file includes a header of another file;
  - calls:    a file names a function or a global variable that another
              file alone defines (a call, a function pointer taken, state
              read or written).
A source and the header of the same name (pipeline/engine.c, engine.h) are
one file here; a header without a source is a file of its own.

Then it fails (exit 1) when
  1. files form a circle: in the include graph, in the call graph, or in
     both taken together (a includes b, b calls a);
  2. a file depends on a file of a folder that is not below its own in
     LAYERS (files may depend on their own folder: rule 1 orders those);
  3. a folder of src/ is missing from LAYERS, or a source lies directly
     in src/.

It reads the code as text: comments, strings and preprocessor lines are
left out, and what a macro hides is not seen (a call written inside a
macro body counts for the file that uses the macro only through its
#include).  Names are taken as functions and variables when they are
defined outside any function without "static".

Usage: test/layers.py [--graph] [--root DIR]
  --graph   print every dependency and what makes it
  --root    the source tree (default: src/ next to this script's folder)
"""
import argparse
import os
import re
import sys
from collections import defaultdict

# Folders from the bottom up.  A file may use the files of its own folder
# and of the folders of the layers below; the folders of one layer are
# independent of each other.
LAYERS = [
    ["base"],                   # settings, redaction, rights, the guard, compat
    ["definition", "status"],   # the index definition and its SQL; shared-memory status
    ["capture", "sink"],        # the slot and decoding; where documents go
    ["pipeline"],               # the engine and its stages
    ["process", "functions"],   # what runs: the processes; the SQL functions
]

TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\S")
IDENT = re.compile(r"[A-Za-z_]")


def code_of(text):
    """The text without comments, strings, characters and preprocessor lines."""
    out = []
    i, n = 0, len(text)
    while i < n:
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("\n" * text.count("\n", i, j))
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text[i] in "\"'":
            j = i + 1
            while j < n and text[j] != text[i]:
                j += 2 if text[j] == "\\" else 1
            out.append(" 0 ")
            i = j + 1
        else:
            out.append(text[i])
            i += 1
    lines, continued = [], False
    for line in "".join(out).split("\n"):
        directive = continued or line.lstrip().startswith("#")
        continued = directive and line.rstrip().endswith("\\")
        lines.append("" if directive else line)
    return "\n".join(lines)


def definitions(code):
    """Functions and variables defined outside any function, not static."""
    names, stmt, depth = set(), [], 0
    hidden = ("static", "typedef", "extern")
    for t in TOKEN.findall(code):
        if depth > 0:
            depth += {"{": 1, "}": -1}.get(t, 0)
            if depth == 0 and "=" not in stmt:
                stmt = []           # a function's body ended
            continue
        if t == "{":
            depth = 1
            if "(" in stmt and "=" not in stmt and stmt[0] not in hidden + ("struct", "union", "enum"):
                names.add(stmt[stmt.index("(") - 1])
                stmt = []
        elif t == ";":
            if stmt and stmt[0] not in hidden and ("=" in stmt or "(" not in stmt):
                decl = stmt[:stmt.index("=")] if "=" in stmt else stmt
                if "[" in decl:
                    decl = decl[:decl.index("[")]
                idents = [x for x in decl if IDENT.match(x)]
                if len(idents) >= 2:
                    names.add(idents[-1])
            stmt = []
        else:
            stmt.append(t)
    return {n for n in names if IDENT.match(n)}


def read_tree(root):
    files = sorted(os.path.relpath(os.path.join(d, f), root)
                   for d, _, fs in os.walk(root) for f in fs if f.endswith((".c", ".h")))
    unit = {}
    for f in files:
        own_source = f[:-2] + ".c"
        unit[f] = own_source if f.endswith(".h") and own_source in files else f
    text = {f: open(os.path.join(root, f), encoding="utf-8").read() for f in files}
    return files, unit, text


def graphs(files, unit, text):
    """{(a, b): [why, ...]} for includes and for calls."""
    code = {f: code_of(text[f]) for f in files}
    defined_by = defaultdict(set)
    for f in files:
        if f.endswith(".c"):
            for name in definitions(code[f]):
                defined_by[name].add(unit[f])
    includes, calls = defaultdict(set), defaultdict(set)
    for f in files:
        here = os.path.dirname(f)
        for header in re.findall(r'^\s*#\s*include\s+"([^"]+)"', text[f], re.M):
            for path in (os.path.normpath(os.path.join(here, header)), header):
                if path in unit:
                    if unit[path] != unit[f]:
                        includes[(unit[f], unit[path])].add(header)
                    break
        if f.endswith(".c"):
            for name in set(TOKEN.findall(code[f])):
                owners = defined_by.get(name, ())
                if len(owners) == 1 and unit[f] not in owners:
                    calls[(unit[f], next(iter(owners)))].add(name)
    return includes, calls


def circles(edges):
    """The strongly connected components of more than one file (Tarjan)."""
    succ = defaultdict(set)
    for a, b in edges:
        succ[a].add(b)
    index, low, stack, on, found = {}, {}, [], set(), []
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(succ[v]):
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
                found.append(sorted(comp))

    for v in sorted(succ):
        if v not in index:
            visit(v)
    return found


def shortest_loop(comp, edges):
    """The shortest circle through the files of comp, as a list of files."""
    succ = defaultdict(set)
    for a, b in edges:
        if a in comp and b in comp:
            succ[a].add(b)
    best = None
    for start in comp:
        prev, frontier = {start: None}, [start]
        while frontier and start not in [w for v in frontier for w in succ[v]]:
            step = []
            for v in frontier:
                for w in sorted(succ[v]):
                    if w not in prev:
                        prev[w] = v
                        step.append(w)
            frontier = step
        last = next(v for v in frontier if start in succ[v])
        loop = [last]
        while loop[-1] != start:
            loop.append(prev[loop[-1]])
        loop.reverse()
        if best is None or len(loop) < len(best):
            best = loop
    return best


def folder(f):
    return f.split("/")[0] if "/" in f else ""


def main():
    ap = argparse.ArgumentParser(description="flusso's layers: no circle, calls go down")
    ap.add_argument("--graph", action="store_true", help="print every dependency and its cause")
    ap.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
    args = ap.parse_args()

    files, unit, text = read_tree(args.root)
    includes, calls = graphs(files, unit, text)
    rank = {name: i for i, layer in enumerate(LAYERS) for name in layer}
    why = defaultdict(list)
    for (a, b), hs in includes.items():
        why[(a, b)] += ['#include "%s"' % h for h in sorted(hs)]
    for (a, b), ns in calls.items():
        why[(a, b)] += sorted(ns)

    def said(a, b):
        return "%s -> %s: %s" % (a, b, ", ".join(why[(a, b)]))

    if args.graph:
        for a, b in sorted(why):
            print(said(a, b))
    problems = []
    for f in files:
        if folder(f) not in rank:
            problems.append("%s: its folder is not in LAYERS (test/layers.py)" % f
                            if folder(f) else "%s: a source directly in src/" % f)
    seen = set()
    for kind, edges in (("includes", includes), ("calls", calls), ("includes and calls", why)):
        for comp in circles(edges):
            loop = shortest_loop(comp, edges)
            if tuple(comp) in seen or tuple(sorted(loop)) in seen:
                continue
            seen.update({tuple(comp), tuple(sorted(loop))})
            problems.append("a circle in the %s: %s%s\n%s" % (
                kind, " -> ".join(loop + loop[:1]),
                "" if len(comp) == len(loop) else " (%d files are tied in all: %s)" % (len(comp), ", ".join(comp)),
                "\n".join("    " + said(a, b) for a, b in zip(loop, loop[1:] + loop[:1]))))
    for a, b in sorted(why):
        fa, fb = folder(a), folder(b)
        if fa != fb and fa in rank and fb in rank and rank[fa] <= rank[fb]:
            problems.append("%s/ may not use %s/ (%s):\n    %s" % (
                fa, fb, "the same layer" if rank[fa] == rank[fb] else "a higher layer", said(a, b)))
    units = sorted(set(unit.values()))
    if problems:
        print("test/layers.py: %d problem(s) in %d files:" % (len(problems), len(units)), file=sys.stderr)
        for p in problems:
            print("  " + p, file=sys.stderr)
        return 1
    print("test/layers.py: %d files in %d folders, %d dependencies between them "
          "(%d by an include, %d by a call): no circle, every folder uses only the layers below it"
          % (len(units), len({folder(u) for u in units}), len(why), len(includes), len(calls)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
