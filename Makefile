# Shortcuts for the commands in README.md.
.PHONY: setup demo test lint bench

setup:
	scripts/setup.sh

demo: setup
	.venv/bin/prorl-eval pass-at-k --out runs/demo --limit 5 --n 8 --max-new-tokens 128

test: setup
	.venv/bin/python -m pytest

lint: setup
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

bench: setup
	.venv/bin/python benchmarks/bench_passk.py
	.venv/bin/python benchmarks/bench_generation_overhead.py
