#!/usr/bin/env python3
"""import-graph.py - the module import graph of every crate, and a check that it has no cycle.

For each crate under crates/, every source file is a module (`a/b.rs` and `a/b/mod.rs` are
`a::b`). An edge A -> B means a `use` in A (outside its tests) names an item of module B,
through `crate::`, `super::` or a child's name. `pub use` re-exports are left out: they make
a facade, not a dependency. `mod` declarations are not edges either.

Usage: scripts/import-graph.py [--print] [--dot]
  --print   list each module's imports (module -> modules it uses)
  --dot     print the graph in Graphviz dot
Exit status: 0 without a cycle, 1 when some modules import each other (directly or around
a loop); the cycles are printed.
"""
import os
import re
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def module_of(src_root, path):
    rel = os.path.relpath(path, src_root)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib", "main"):
        rel = rel[:-1]
    return tuple(rel)


def strip_tests(text):
    """The file without its `#[cfg(test)]` items (tests may reach anywhere)."""
    out, skip_depth, depth, pending = [], None, 0, False
    for line in text.split("\n"):
        stripped = line.strip()
        if skip_depth is None and stripped.startswith("#[cfg(test)]"):
            pending = True
            continue
        if pending:
            # The attribute applies to the next item: skip it whole (one line, or braces).
            pending = False
            if "{" not in line:
                continue
            skip_depth = depth
        opens, closes = line.count("{"), line.count("}")
        if skip_depth is not None:
            depth += opens - closes
            if depth <= skip_depth:
                skip_depth = None
            continue
        depth += opens - closes
        out.append(line)
    # Comments name modules without depending on them (doc links).
    return "\n".join(re.sub(r"//.*$", "", line) for line in out)


def use_paths(text):
    """Paths named by the non-`pub` `use` declarations of a file, brace groups expanded."""
    paths = []
    for m in re.finditer(r"^\s*(pub(\([^)]*\))?\s+)?use\s+([^;]+);", text, re.M):
        if m.group(1) and not m.group(2):
            continue  # `pub use`: a re-export
        if m.group(2) and "crate" not in m.group(2) and "super" not in m.group(2):
            continue
        if m.group(1):
            continue  # pub(crate)/pub(super) use: re-exports as well
        paths.extend(expand(re.sub(r"\s+", "", m.group(3))))
    # Paths written inline in code (`crate::stats::Stats::default()`).
    for m in re.finditer(r"(?<![\w:])((?:crate|super)(?:::\w+)+)", text):
        paths.append(m.group(1))
    return paths


def expand(tree):
    """`a::{b, c::{d}}` -> [`a::b`, `a::c::d`]."""
    brace = tree.find("{")
    if brace < 0:
        return [tree.split(" as ")[0]]
    prefix, inner = tree[:brace], tree[brace + 1 : tree.rfind("}")]
    parts, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    parts.append(cur)
    out = []
    for p in parts:
        if p and p != "self":
            out.extend(expand(prefix + p))
        elif p == "self":
            out.append(prefix.rstrip(":"))
    return out


def resolve(path, here, modules):
    """The module (a key of `modules`) that `path`, written in module `here`, points into."""
    parts = path.split("::")
    if parts[0] == "crate":
        base, rest = (), parts[1:]
    elif parts[0] == "super":
        base = here
        while parts and parts[0] == "super":
            base, parts = base[:-1], parts[1:]
        rest = parts
    elif parts[0] == "self":
        base, rest = here, parts[1:]
    else:
        base, rest = here, parts  # a child module's name
        if (here + (rest[0],)) not in modules:
            return None
    target = base
    for p in rest:
        if target + (p,) in modules:
            target = target + (p,)
        else:
            break
    return target


def crate_graph(crate_dir):
    src = os.path.join(crate_dir, "src")
    modules = {}
    for dirpath, _, files in os.walk(src):
        if os.path.relpath(dirpath, src).startswith("bin"):
            continue
        for f in files:
            if f.endswith(".rs") and "test" not in f:
                path = os.path.join(dirpath, f)
                modules[module_of(src, path)] = path
    edges = {m: set() for m in modules}
    for mod, path in modules.items():
        with open(path) as fh:
            text = strip_tests(fh.read())
        paths = use_paths(text)
        # Inline paths through a child module (`instance::remove_instance_dir(..)`).
        children = {m[-1] for m in modules if len(m) == len(mod) + 1 and m[: len(mod)] == mod}
        for m in re.finditer(r"(?<![\w:])(\w+)::\w+", text):
            if m.group(1) in children and not re.search(
                r"^\s*(pub(\([^)]*\))?\s+)?(use|mod)\s[^;]*" + re.escape(m.group(0)),
                text[: m.end()].rsplit("\n", 1)[-1] + ";",
            ):
                paths.append(m.group(0))
        for p in paths:
            target = resolve(p, mod, modules)
            if target is None or target == mod:
                continue
            edges[mod].add(target)
    return modules, edges


def cycles(edges):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
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
                out.append(comp)

    sys.setrecursionlimit(10000)
    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def name(crate, mod):
    return crate + ("::" + "::".join(mod) if mod else "")


def main():
    show = "--print" in sys.argv
    dot = "--dot" in sys.argv
    found = []
    if dot:
        print("digraph imports {\n  rankdir=LR;")
    crates_dir = os.path.join(REPO, "crates")
    for crate in sorted(os.listdir(crates_dir)):
        if not os.path.isdir(os.path.join(crates_dir, crate, "src")):
            continue
        modules, edges = crate_graph(os.path.join(crates_dir, crate))
        crate_name = crate.replace("-", "_")
        for mod in sorted(edges):
            if show:
                targets = ", ".join(name(crate_name, t) for t in sorted(edges[mod])) or "-"
                print(f"{name(crate_name, mod)} -> {targets}")
            if dot:
                for t in sorted(edges[mod]):
                    print(f'  "{name(crate_name, mod)}" -> "{name(crate_name, t)}";')
        for comp in cycles(edges):
            found.append(" <-> ".join(name(crate_name, m) for m in sorted(comp)))
    if dot:
        print("}")
    for c in found:
        print(f"import-graph: CYCLE: {c}", file=sys.stderr)
    if not dot:
        print(f"import-graph: {'no cycle' if not found else f'{len(found)} cycle(s)'}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
