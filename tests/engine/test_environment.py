"""Where a figure was computed (engine/environment.py): every benchmark row, per-window error file and Markdown
table records the environment, and a resume or a paired test across environments says so."""

from __future__ import annotations

import json

import numpy as np
import torch

from stcast.bench import resume as resume_module
from stcast.bench.paired import describe, load_window_errors, paired_test
from stcast.bench.runner import run_benchmark
from stcast.config import BenchConfig
from stcast.engine.environment import (
    cpu_model,
    describe_environment,
    differences,
    environment,
    environments_note,
    git_commit,
)

SHA = "0123456789abcdef0123456789abcdef01234567"


def test_the_environment_names_the_libraries_and_the_cpu_kernels_a_run_used():
    env = environment()
    assert env["torch"] == torch.__version__ and env["numpy"] == np.__version__
    assert env["cpu"] == torch.backends.cpu.get_cpu_capability() and env["threads"] == torch.get_num_threads()
    assert json.loads(json.dumps(env)) == env  # plain JSON: it goes into run states and .npz meta
    line = describe_environment(env)
    assert f"torch {torch.__version__}" in line and f"cpu {env['cpu']}" in line
    assert describe_environment(None) == "not recorded"
    assert describe_environment({"commit": "abc"}) == "commit abc"  # an edited state: a line, not an IndexError


def test_the_processor_is_named_by_generation_not_only_by_kernel_level(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC 9654\nstepping\t: 1\n"
                    "\nprocessor\t: 1\ncpu family\t: 6\nmodel name\t: another\n")
    assert cpu_model(info) == "AMD EPYC 9654 (family 25, model 17, stepping 1)"  # the first processor's block
    assert differences({"cpu_model": cpu_model(info)}, {"cpu_model": "AMD EPYC 9654 (family 26, model 2)"})
    cpu_model(tmp_path / "missing")  # no /proc (macOS, Windows): what `platform` says, or None; never an error


def test_the_commit_is_read_from_the_git_folder_without_running_git(tmp_path):
    assert git_commit(tmp_path) is None  # not a checkout (an installed package, an exported snapshot)
    git = tmp_path / "repo" / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    (git / "refs" / "heads" / "main").write_text(SHA + "\n")
    assert git_commit(tmp_path / "repo") == SHA[:12]
    (git / "refs" / "heads" / "main").unlink()  # after `git gc` the branch lives in packed-refs
    (git / "packed-refs").write_text(f"# pack-refs with: peeled\n{'f' * 40} refs/heads/other\n{SHA} refs/heads/main\n")
    assert git_commit(tmp_path / "repo") == SHA[:12]
    (git / "HEAD").write_text("fedcba9876543210fedcba9876543210fedcba98\n")  # a detached HEAD
    assert git_commit(tmp_path / "repo") == "fedcba987654"
    wt = tmp_path / "worktree"  # a worktree's .git is a file naming its folder; branches live in the common one
    (git / "worktrees" / "w").mkdir(parents=True)
    (git / "worktrees" / "w" / "HEAD").write_text("ref: refs/heads/main\n")
    (git / "worktrees" / "w" / "commondir").write_text("../..\n")
    wt.mkdir()
    (wt / ".git").write_text(f"gitdir: {git / 'worktrees' / 'w'}\n")
    assert git_commit(wt) == SHA[:12]
    (git / "worktrees" / "w" / "HEAD").write_bytes(b"\xff\xfe garbage")  # unreadable: no commit, no traceback
    assert git_commit(wt) is None


def test_differences_name_each_changed_library_but_not_the_commit():
    a = {"stcast": "0.1.0", "commit": "aaa", "torch": "2.13.0+cpu", "numpy": "2.4.6", "cpu": "AVX512", "threads": 1}
    assert differences(a, dict(a, commit="bbb")) == []  # runs made days apart: the history tells what changed
    assert differences(a, dict(a, numpy="2.3.1", threads=2)) == ["numpy 2.4.6 / 2.3.1", "threads 1 / 2"]
    assert differences(a, {k: v for k, v in a.items() if k != "numpy"}) == ["numpy 2.4.6 / -"]
    assert differences(a, None) == [] and environments_note([a, None], "x") == ""  # not recorded: nothing claimed
    assert environments_note([a, "AVX2", ["x"], 3], "x") == "" and describe_environment("x") == "not recorded"
    note = environments_note([a, a, dict(a, cpu="AVX2")], "the compared runs")
    assert note.startswith("note: the compared runs ran in different environments (cpu AVX512 / AVX2)")


def _cfg(models):
    return BenchConfig.from_dict({"name": "t", "models": models, "datasets": ["los-loop"],
                                  "train": {"epochs": 1, "max_batches_per_epoch": 2, "progress": False}})


def test_a_benchmark_records_where_each_row_ran_and_a_resume_elsewhere_says_so(tmp_path, monkeypatch):
    here = environment()
    csv = tmp_path / "t.csv"
    from stcast.bench.runner import write_results

    report = run_benchmark(_cfg(["last-value", "ha"]), log=lambda *a: None, rows_csv=csv)
    state = json.loads((tmp_path / "t.state.json").read_text())
    assert state["started_in"] == here and set(state["environments"]) == {"los-loop\tlast-value", "los-loop\tha"}
    assert load_window_errors(tmp_path / "t.windows" / "los-loop--ha.npz").meta["environment"] == here
    md = write_results(report, tmp_path, plot=False)["md"].read_text()
    assert f"Run in: {describe_environment(here)}." in md

    logs: list[str] = []  # the same environment: a resume says nothing about it
    run_benchmark(_cfg(["last-value", "ha"]), log=logs.append, rows_csv=csv, resume=True)
    assert not any("environments" in line for line in logs)

    elsewhere = dict(here, numpy="0.0-elsewhere")
    monkeypatch.setattr(resume_module, "environment", lambda: elsewhere)
    logs.clear()
    report = run_benchmark(_cfg(["last-value", "ha", "seasonal-naive"]), log=logs.append, rows_csv=csv, resume=True)
    said = " ".join(logs)
    assert f"ran in different environments (numpy {here['numpy']} / 0.0-elsewhere)" in said
    state = json.loads((tmp_path / "t.state.json").read_text())
    assert state["environments"]["los-loop\tha"] == here  # a finished row keeps where it ran
    assert state["environments"]["los-loop\tseasonal-naive"] == elsewhere and state["started_in"] == elsewhere
    md = write_results(report, tmp_path, plot=False)["md"].read_text()
    assert "Rows ran in 2 environments" in md
    assert f"los-loop last-value, los-loop ha: {describe_environment(here)}" in md

    old, new = (load_window_errors(tmp_path / "t.windows" / f"los-loop--{m}.npz") for m in ("ha", "seasonal-naive"))
    text = describe(paired_test([new], [old]))
    assert f"ran in different environments (numpy 0.0-elsewhere / {here['numpy']})" in text
    assert "environments" not in describe(paired_test([old], [load_window_errors(
        tmp_path / "t.windows" / "los-loop--last-value.npz")]))


def test_a_model_file_records_where_it_was_trained_and_older_files_say_nothing(tmp_path, capsys):
    from stcast.cli import main
    from stcast.engine.checkpoint import load_model

    path = tmp_path / "lv.pt"
    assert main(["train", "--model", "last-value", "--dataset", "los-loop", "--out", str(path)]) == 0
    _, _, info = load_model(path)
    assert info["environment"] == environment()
    state = torch.load(path, weights_only=True)
    del state["environment"]  # a file written before environments were recorded
    torch.save(state, path)
    assert load_model(path)[2]["environment"] is None
    assert main(["evaluate", "--model-file", str(path), "--errors-out", str(tmp_path / "e.npz")]) == 0
    meta = load_window_errors(tmp_path / "e.npz").meta
    assert meta["environment"] is None and meta["scored_in"] == environment()  # never the scoring one passed off
