# Encore: two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export ENCORE_HOME ?= $(CURDIR)/.encore
export PYTHONUNBUFFERED := 1

.PHONY: install run test test-fast chaos bench bench-spark bench-nightly bench-training experiments docs backfill clean \
	deploy-up deploy-test deploy-down deploy-status

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

## Generate the embedded dataset (if absent), ingest history, run the nightly DAG for 3 dates, print results.
run: install
	$(PY) -m encore run

## Run the nightly DAG for every date in [START, END] in order, e.g. make backfill START=2026-10-25 END=2026-10-27
backfill: install
	$(PY) -m encore backfill --start $(START) --end $(END)

test: install
	$(PY) -m pytest

## The fault matrix (README "Fault matrix"): each fault injected into real nights of a fresh small state dir
## ($(ENCORE_HOME)/chaos); prints the table, writes bench_results/chaos.json, fails if any case is not clean.
## Its fast cases (no Airflow night) also run in `make test` (tests/test_chaos.py).
chaos: install
	mkdir -p bench_results
	$(PY) -m benchmarks.chaos --root $(ENCORE_HOME)/chaos --out bench_results/chaos.json

## Unit tests only (skips the end-to-end Airflow runs).
test-fast: install
	$(PY) -m pytest -m "not slow"

## Benchmarks (JSON under bench_results/ + printed tables): Spark vs DuckDB, nightly DAG at 1x/10x events,
## Encore SASRec vs RecBole.
bench: bench-spark bench-nightly bench-training

bench-spark: install
	mkdir -p bench_results
	$(PY) -m benchmarks.spark_bench --events 1000000 10000000 --repeats 2 --out bench_results/spark.json

## Wall time per task of one nightly run (from Airflow) on the default data and on 10x the users (events).
bench-nightly: install
	mkdir -p bench_results
	$(PY) -m benchmarks.nightly_bench --scales 1 10 --out bench_results/nightly.json

# RecBole lives in its own venv: it is a benchmark peer, not a runtime dependency.
.venv-bench/.installed:
	$(PYTHON) -m venv .venv-bench
	.venv-bench/bin/pip install --quiet torch==2.13.0 recbole==1.2.1 'setuptools<81' 'pandas<3'
	touch $@

bench-training: install .venv-bench/.installed
	mkdir -p bench_results
	$(PY) -m benchmarks.training_bench --dataset ml-100k --epochs 60 --recbole-epochs 12 --patience 5 --encore-prediction-layer --out bench_results/training.json

.PHONY: bench-spark-cluster bench-ddp bench-search bench-mssd bench-epoch-profile cluster-up cluster-down cluster-status

## Scale-out (README "Scale-out"): the Spark jobs at 10M events on a standalone cluster of 1 and 2 workers
## (1 core each) beside local[1], local[2] and DuckDB in one run; SASRec on 2 torchrun processes vs 1.
bench-spark-cluster: install
	mkdir -p bench_results
	$(PY) -m benchmarks.spark_bench --events 10000000 --cluster 1 2 --out bench_results/spark_cluster.json

## The outcome models on an MSSD-format file (README "p_skip and predicted_completion"): the default generated
## music sessions written in MSSD's column layout, ingested with --source mssd and run as one night.
bench-mssd: install
	mkdir -p bench_results
	$(PY) -m benchmarks.mssd_format --out bench_results/mssd_format.json

## Where a SASRec training epoch's time goes (README "Attention dropout off"): the defaults beside
## attention dropout 0.2, timed and under torch.profiler, on the default data's marts.
bench-epoch-profile: install
	mkdir -p bench_results
	$(PY) -m benchmarks.epoch_profile --dataset synthetic_music --out bench_results/epoch_profile_synthetic_music.json

bench-ddp: install
	mkdir -p bench_results
	$(PY) -m benchmarks.ddp_bench --world-sizes 1 2 --epochs 5 --out bench_results/ddp.json

## Spark standalone cluster on 127.0.0.1 (spark.cluster_workers x spark.worker_cores, state under
## $(ENCORE_HOME)/cluster); run the nightly on it with ENCORE__SPARK__MODE=submit ENCORE__SPARK__MASTER=spark://127.0.0.1:7077.
cluster-up: install
	$(PY) -m spark_jobs.cluster up

cluster-down: install
	$(PY) -m spark_jobs.cluster down

cluster-status: install
	$(PY) -m spark_jobs.cluster status

## Optuna search of SASRec's settings on MovieLens-100k under RecBole's protocol (README "Which models
## compete"); objective = validation NDCG@10, median pruning, 12 trials; table + bench_results/sasrec_search_*.json
bench-search: install
	$(PY) -m pip install --quiet -e '.[test,search]'
	mkdir -p bench_results
	$(PY) -m benchmarks.sasrec_search --dataset ml-100k --protocol recbole --sequence-events 1000 --trials 12 --epochs 40 --seed 0

## Model experiments (mean +- std over 3 seeds), tables printed and saved under bench_results/.
experiments: install
	mkdir -p bench_results
	$(PY) -m benchmarks.experiments --dataset ml-100k --seeds 0 1 2 --epochs 5 --patience 2 --batch-size 64 --loss full_softmax --out bench_results/experiments_ml-100k.json
	$(PY) -m benchmarks.experiments --dataset synthetic_music --seeds 0 1 2 --epochs 5 --patience 2 --batch-size 64 --loss full_softmax --n-users 600 --n-days 14 --out bench_results/experiments_synthetic_music.json
	$(PY) -m benchmarks.experiments_smoe --dataset video --seeds 0 1 2 --epochs 5
	$(PY) -m benchmarks.experiments_smoe --dataset ml-100k --seeds 0 1 2 --epochs 5
	$(PY) -m benchmarks.leaderboard --dataset ml-100k --seeds 0 1 2
	$(PY) -m benchmarks.leaderboard --dataset synthetic_music --seeds 0 1 2

## Deployed mode on this machine (README "Deployed mode"): Postgres, MLflow server, Airflow scheduler /
## dag-processor / api-server / triggerer on 127.0.0.1, state under $(ENCORE_HOME)/deploy. up is idempotent,
## test runs two nights through the scheduler and checks them, down stops what up started (data kept).
deploy-up: install
	$(PY) -m encore deploy up

deploy-test: install
	$(PY) -m encore deploy test

deploy-down: install
	$(PY) -m encore deploy down

deploy-status: install
	$(PY) -m encore deploy status

docs: install
	$(PY) -c "from encore.core.config import load_config; from encore.features.dbt_runner import dbt_docs; print(dbt_docs(load_config()))"

clean:
	rm -rf $(ENCORE_HOME) bench_results
