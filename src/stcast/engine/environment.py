"""Where a figure was computed: the software and CPU a run's numbers depend on beyond its config and seed.

A rerun of one config and seed is bit-identical only in one environment. Measured here (docs/benchmarks.md,
"what a rerun reproduces"): after the virtual environment was rebuilt, same-seed reruns of committed rows moved
by 0.002-0.040 MAE, as much as the spread over seeds. So every benchmark row (its run state), every per-window
error file and every table's Markdown records the environment it ran in, and `stcast compare` and
`stcast benchmark --resume` say when the runs they put side by side ran in different ones.

Recorded: the stcast version and, when it runs from a git checkout, the commit; Python; the versions of the
libraries whose numerics or random streams a row depends on (torch, numpy, scipy, pandas, lightning,
transformers, peft, where installed); torch's CPU kernel level (AVX2 / AVX512) and the processor (name, family,
model), the machine, the torch threads, and the GPU when one is used. Reading a commit needs no `git` process:
the `.git` folder is read directly (the commit checked out, not whether the tree had uncommitted changes; a run
from an exported snapshot records none).
"""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path

import torch

_LIBRARIES = ("torch", "numpy", "scipy", "pandas", "lightning", "transformers", "peft")
_ORDER = ("stcast", "commit", "python", *_LIBRARIES, "cpu", "cpu_model", "machine", "threads", "gpu")


def environment() -> dict:
    """This process's environment, as plain JSON values (module docstring)."""
    from stcast import __version__

    env: dict = {"stcast": __version__}
    commit = git_commit(Path(__file__).resolve().parents[3])
    if commit:
        env["commit"] = commit
    env["python"] = platform.python_version()
    for lib in _LIBRARIES:
        try:
            env[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            continue
    env["cpu"] = torch.backends.cpu.get_cpu_capability()
    model = cpu_model()
    if model:
        env["cpu_model"] = model
    env["machine"] = platform.machine()
    env["threads"] = torch.get_num_threads()
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
    return env


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The processor, e.g. `AMD EPYC (family 26, model 2, stepping 1)`: the kernel level alone (AVX512) does not
    tell two CPU generations apart, and the math libraries pick kernels per generation. Linux's /proc/cpuinfo,
    else what `platform` knows; None when neither says."""
    try:
        fields: dict[str, str] = {}
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if not line.strip():
                break  # the first processor's block is enough
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        return platform.processor() or None
    name = fields.get("model name") or fields.get("Model") or platform.processor()
    ids = ", ".join(f"{k.split()[-1]} {fields[k]}" for k in ("cpu family", "model", "stepping") if fields.get(k))
    return (f"{name} ({ids})" if ids else name) or None


def git_commit(root: Path) -> str | None:
    """The commit checked out at `root` (a source tree's top), read from `.git` without running git; None when
    `root` is not a git checkout (an installed package, an exported snapshot) or the ref cannot be found."""
    git = root / ".git"
    try:
        if git.is_file():  # a worktree: `gitdir: <path>`
            git = Path(git.read_text().split(":", 1)[1].strip())
            if not git.is_absolute():
                git = root / git
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head[:12] or None  # a detached HEAD holds the commit itself
        ref = head[4:].strip()
        for base in (git, _common_dir(git)):
            if (base / ref).is_file():
                return (base / ref).read_text().strip()[:12] or None
            packed = base / "packed-refs"
            if packed.is_file():
                for line in packed.read_text().splitlines():
                    if line.endswith(" " + ref):
                        return line.split()[0][:12]
    except (OSError, IndexError, UnicodeDecodeError):
        return None
    return None


def _common_dir(git: Path) -> Path:
    """A worktree's shared git folder (where its branches live)."""
    common = git / "commondir"
    if common.is_file():
        path = Path(common.read_text().strip())
        return path if path.is_absolute() else git / path
    return git


def differences(a: dict | None, b: dict | None) -> list[str]:
    """What differs between two recorded environments, e.g. `numpy 2.3.1 / 2.4.6`; [] when either is unknown
    (a file or state written before environments were recorded) or they agree. The commit is recorded but not
    compared: runs made days apart always differ in it, and code that changes a row's figures is the history's
    to tell (the tables pair runs of one protocol), while a library or CPU change is invisible without this."""
    if not isinstance(a, dict) or not isinstance(b, dict) or not a or not b:
        return []
    keys = [k for k in _ORDER if k in a or k in b] + sorted(k for k in set(a) | set(b) if k not in _ORDER)
    return [f"{k} {a.get(k, '-')} / {b.get(k, '-')}" for k in keys if k != "commit" and a.get(k) != b.get(k)]


def describe_environment(env: dict | None) -> str:
    """One line: `stcast 0.1.0 (commit 8c4fe8d...), python 3.11.9, torch 2.13.0+cpu, ..., 1 torch thread`."""
    if not isinstance(env, dict) or not env:
        return "not recorded"
    parts = []
    for k in [k for k in _ORDER if k in env] + sorted(k for k in env if k not in _ORDER):
        if k == "commit" and parts:
            parts[-1] += f" (commit {env[k]})"
        elif k == "threads":
            parts.append(f"{env[k]} torch thread{'s' * (env[k] != 1)}")
        else:
            parts.append(f"{k} {env[k]}")
    return ", ".join(parts)


def environments_note(envs: list[dict | None], what: str) -> str:
    """A note when the environments of runs put side by side differ ('' when they agree or are not recorded)."""
    known = [e for e in envs if isinstance(e, dict) and e]  # a file's meta is read, not trusted: others are unknown
    diff = sorted({d for e in known[1:] for d in differences(known[0], e)})
    if not diff:
        return ""
    return (f"note: {what} ran in different environments ({'; '.join(diff)}): same-seed reruns are not "
            "bit-identical across environments, so part of the difference may be the environment's; compare "
            "runs made in one environment where the difference is small")
