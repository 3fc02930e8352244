# The README's two commands. Each does its own set-up (virtual env + installs) first.
.PHONY: setup demo test test-fast mutation lint

setup:
	bash scripts/setup.sh

demo: setup
	.venv/bin/stcast demo

test: setup
	.venv/bin/python -m pytest
	.venv/bin/python scripts/mutation_check.py

# every paper mechanism removed in turn: at least one of its model's tests must fail (docs/fidelity.md)
mutation: setup
	.venv/bin/python scripts/mutation_check.py

test-fast: setup
	.venv/bin/python -m pytest -m "not slow"

lint: setup
	.venv/bin/ruff check src tests scripts benchmarks
