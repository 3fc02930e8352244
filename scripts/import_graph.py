"""The import graph of src/stcast: cycles and upward arrows between rooms (none expected).

    python scripts/import_graph.py          # prints each cycle and each arrow that runs up; exit 1 if any

Every import counts, those inside functions too (a lazy import is still a dependency). Rooms, lowest first,
as docs/ARCHITECTURE.md draws them: a module may import its own room and the rooms below it.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "stcast"

# room -> floor; a module's room is its first path part under stcast/ (the file stem for top-level modules)
FLOORS = {"errors": 0, "task": 0, "metrics": 1, "nn": 1, "data": 2, "models": 3, "config": 4, "engine": 5,
          "pretrain": 6, "bench": 6, "api": 7, "cli": 7, "__init__": 8, "__main__": 8}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The stcast modules a file imports (`from stcast.x import y` counts y when y is a module)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name.startswith("stcast"):
                out.add(name)
    return out


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    known = set(files)
    g = {}
    for mod, path in files.items():
        deps = imports_of(path, known) - {mod}
        # importing a package's submodule runs the package's __init__: not an arrow worth drawing
        g[mod] = {d for d in deps if not mod.startswith(d + ".")}
    return g


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g.get(v, ())):
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
    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def room(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def upward(g: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted((a, b) for a, deps in g.items() for b in deps
                  if FLOORS.get(room(b), 99) > FLOORS.get(room(a), 99))


def main() -> int:
    g = graph()
    found = cycles(g)
    up = upward(g)
    unknown = sorted({room(m) for m in g} - set(FLOORS))
    for c in found:
        print("cycle:", " <-> ".join(c))
    for a, b in up:
        print(f"upward: {a} ({room(a)}, floor {FLOORS.get(room(a))}) imports {b} ({room(b)}, floor "
              f"{FLOORS.get(room(b))})")
    for r in unknown:
        print(f"room without a floor: {r} (add it to FLOORS)")
    print(f"{len(g)} modules, {sum(map(len, g.values()))} arrows: {len(found)} cycles, {len(up)} upward arrows")
    return 1 if found or up or unknown else 0


if __name__ == "__main__":
    sys.exit(main())
