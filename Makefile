# The two commands of the README. Both do all set-up first (scripts/setup.sh is idempotent).
.PHONY: setup demo test lint format

setup:
	bash scripts/setup.sh

# Main job: animate the bundled example recording with the embedded default model.
demo: setup
	.venv/bin/memorytalker animate --out out/

lint: setup
	.venv/bin/ruff check src tests benchmarks
	.venv/bin/ruff format --check src tests benchmarks

test: lint
	.venv/bin/python -m pytest -q
