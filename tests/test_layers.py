"""The house: no import circle, no upward arrow between rooms, every module importable on its own, small
modules, and the task compared as a type (never as a string) below the CLI and the API."""

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).parents[1]
PACKAGE = REPO / "src" / "stcast"
sys.path.insert(0, str(REPO / "scripts"))
import import_graph  # noqa: E402


def test_no_import_cycle_and_no_upward_arrow():
    g = import_graph.graph()
    assert len(g) > 50  # the whole package was read
    assert import_graph.cycles(g) == []
    assert import_graph.upward(g) == []
    assert {import_graph.room(m) for m in g} <= set(import_graph.FLOORS)


def test_the_graph_finds_a_planted_cycle_and_an_upward_arrow():
    g = {"stcast.models.base": {"stcast.models.stid"}, "stcast.models.stid": {"stcast.models.base"},
         "stcast.data.windows": {"stcast.engine.trainer"}, "stcast.engine.trainer": set()}
    assert import_graph.cycles(g) == [["stcast.models.base", "stcast.models.stid"]]
    assert import_graph.upward(g) == [("stcast.data.windows", "stcast.engine.trainer")]


def test_every_module_imports_on_its_own():
    """Each module imported first, in a fresh set of stcast modules: no import order hides a circle."""
    mods = sorted(m for m in import_graph.graph() if not m.endswith("__main__"))  # __main__ runs the CLI
    code = ("import sys, importlib\n"
            f"for m in {mods!r}:\n"
            "    for k in [k for k in sys.modules if k == 'stcast' or k.startswith('stcast.')]:\n"
            "        del sys.modules[k]\n"
            "    importlib.import_module(m)\n"
            "print('ok', len(" f"{mods!r}" "))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("ok")


def test_no_module_over_450_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 450}
    assert long == {}


TASK_COMPARE = re.compile(r"""(==|!=|\bin\b|\bis\b)\s*\(?\s*["'](forecast|impute|multitask)["']"""
                          r"""|["'](forecast|impute|multitask)["']\s*(==|!=)""")


def test_no_task_string_compares_below_the_cli_and_api():
    found = []
    for p in PACKAGE.rglob("*.py"):
        rel = p.relative_to(PACKAGE)
        if rel.parts[0] in ("cli", "api.py"):
            continue
        for i, line in enumerate(p.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if TASK_COMPARE.search(code) and '"""' not in code:
                found.append(f"{rel}:{i}: {line.strip()}")
    assert found == []
    assert TASK_COMPARE.search('if task == "impute":') and TASK_COMPARE.search("x in ('forecast', 'impute')")
