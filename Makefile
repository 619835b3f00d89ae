# The two commands of the README. Both do all set-up first (scripts/setup.sh is idempotent).
.PHONY: setup demo test lint format

setup:
	bash scripts/setup.sh

# Main job: animate the bundled example recording with the embedded default model (no dataset, no
# network): out/example.npy (T, V, 3), out/example.mp4 (H.264 + the speech), out/example.glb.
demo: setup
	.venv/bin/memorytalker animate --out out/

lint: setup
	.venv/bin/ruff check src tests benchmarks scripts
	.venv/bin/ruff format --check src tests benchmarks scripts

test: lint
	.venv/bin/python -m pytest -q
