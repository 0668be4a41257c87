# Each target sets up .venv itself, so a fresh clone needs only Python 3.11+ and git.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test unit integration bench quality clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/playbook-sync demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

unit: $(STAMP)
	$(BIN)/python -m pytest -q -m unit

integration: $(STAMP)
	$(BIN)/python -m pytest -q -m integration

# Throughput, calls, cost and matching benchmarks → bench/out/results.json and BENCHMARKS.md
# (about 20 min; BENCH_ARGS=--full for the complete matrix, --smoke to check the harness).
bench: $(STAMP)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# Retrieval and placement quality on a labelled playbook (bench/quality/) → QUALITY.md (a few minutes).
quality: $(STAMP)
	$(BIN)/python -m bench.quality $(QUALITY_ARGS)

clean:
	rm -rf $(VENV) .playbook-sync .pytest_cache .hypothesis bench/out
