# The two commands of the README. Both do all set-up first (scripts/setup.sh is idempotent).
.PHONY: setup demo test lint format

setup:
	bash scripts/setup.sh

# Main job. Until the model lands this runs the end-to-end path that exists: a small fake VOCASET
# distribution in the exact raw layout -> `prepare vocaset` -> `data check` -> data loader, then the five
# metrics on 8 clips. (It becomes `memorytalker animate` on the bundled example once the model lands.)
demo: setup
	.venv/bin/python benchmarks/data_pipeline.py --clips 8 --frames 240
	.venv/bin/python benchmarks/bench_metrics.py --clips 8 --skip-cold

lint: setup
	.venv/bin/ruff check src tests benchmarks
	.venv/bin/ruff format --check src tests benchmarks

test: lint
	.venv/bin/python -m pytest -q
