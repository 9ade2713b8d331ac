# Encore: two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export ENCORE_HOME ?= $(CURDIR)/.encore
export PYTHONUNBUFFERED := 1

.PHONY: install run test test-fast bench docs backfill clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

## Generate the embedded dataset (if absent), ingest history, run the nightly DAG for 3 dates, print results.
run: install
	$(PY) -m encore.cli run

## Run the nightly DAG for every date in [START, END] in order, e.g. make backfill START=2026-10-25 END=2026-10-27
backfill: install
	$(PY) -m encore.cli backfill --start $(START) --end $(END)

test: install
	$(PY) -m pytest

## Unit tests only (skips the end-to-end Airflow runs).
test-fast: install
	$(PY) -m pytest -m "not slow"

bench: install
	mkdir -p bench_results
	$(PY) -m spark_jobs.bench --events 1000000 --out bench_results/spark.json

docs: install
	$(PY) -c "from encore.config import load_config; from encore.dbt_runner import dbt_docs; print(dbt_docs(load_config()))"

clean:
	rm -rf $(ENCORE_HOME) bench_results
