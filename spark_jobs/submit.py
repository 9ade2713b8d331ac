"""spark-submit entry point: ``spark-submit spark_jobs/submit.py --run-date D [--job J ...]``.

Configuration comes from the environment (ENCORE_HOME, ENCORE_CONFIG, ENCORE__*), as
for every other stage; ``submit_command`` builds the command line from that config so
the DAG can switch to spark-submit (``spark.mode = "submit"``) without code changes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
from pathlib import Path

import pyspark

from encore.core.config import EncoreConfig, load_config
from spark_jobs.session import driver_java_options, spark_local_dir

SUBMIT_SCRIPT = Path(__file__).resolve()
STATS_MARKER = "ENCORE_SPARK_STATS"  # starts the stdout line with the run's stats (JVM logs may follow)


def submitted_stats(stdout: str) -> dict:
    """The stats the submitted driver printed (client deploy mode: the driver's stdout is ours)."""
    lines = [line for line in stdout.splitlines() if line.startswith(STATS_MARKER + " ")]
    if not lines:
        raise RuntimeError(f"spark-submit finished without a {STATS_MARKER} line on stdout")
    return json.loads(lines[-1][len(STATS_MARKER) + 1:])


def submit_command(cfg: EncoreConfig, run_date: str | dt.date, jobs: tuple[str, ...] = ()) -> list[str]:
    """argv for spark-submit against ``cfg.spark.master`` (the driver imports the installed package)."""
    args = [*spark_submit_options(cfg, run_date), str(SUBMIT_SCRIPT), "--run-date", str(run_date)]
    for job in jobs:
        args += ["--job", job]
    return args


def spark_submit_options(cfg: EncoreConfig, run_date: str | dt.date | None) -> list[str]:
    """spark-submit and its options for ``cfg.spark`` (everything before the application file):
    master, memory, the JVM options for ``run_date``'s input size, shuffle partitions, Python."""
    java_options = driver_java_options(cfg, run_date)  # UTC, the JIT for the input size, spark.java_options
    return [
        spark_submit_path(),
        "--master", cfg.spark.master,
        "--driver-memory", cfg.spark.driver_memory,
        "--executor-memory", cfg.spark.executor_memory,
        "--conf", f"spark.driver.extraJavaOptions={java_options}",
        "--conf", f"spark.executor.extraJavaOptions={java_options}",
        "--conf", f"spark.sql.shuffle.partitions={cfg.spark.shuffle_partitions}",
        "--conf", f"spark.local.dir={spark_local_dir(cfg)}",
        "--conf", f"spark.pyspark.python={sys.executable}",
        "--conf", f"spark.pyspark.driver.python={sys.executable}",
    ]


def spark_submit_path() -> str:
    """This venv's spark-submit (pip-installed pyspark), else the one on PATH."""
    spark_submit = Path(sys.executable).with_name("spark-submit")
    return str(spark_submit if spark_submit.exists() else "spark-submit")


def submit_env(cfg: EncoreConfig) -> dict[str, str]:
    """Environment of the spark-submit process: the task's whole config (``cfg.env()``) and a
    SPARK_HOME. Without one, pip-installed spark-submit looks for pyspark with whatever
    ``python3`` is first on PATH, which in an Airflow worker need not be this venv's.
    With a master on the loopback address (the cluster of ``spark_jobs.cluster``) the driver
    binds there too (``SPARK_LOCAL_IP``): its executors call it back, and its web UI stays local."""
    env = {"SPARK_HOME": str(Path(pyspark.__file__).parent), **os.environ, **cfg.env()}
    if is_loopback_master(cfg.spark.master):
        env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    return env


def is_loopback_master(master: str) -> bool:
    """A standalone master on this machine's loopback address, e.g. ``spark://127.0.0.1:7077``."""
    host = master.removeprefix("spark://").rsplit(":", 1)[0]
    return master.startswith("spark://") and host in {"127.0.0.1", "localhost"}


def main(argv: list[str] | None = None) -> dict:
    from spark_jobs.pipeline import JOBS, run_night

    parser = argparse.ArgumentParser(description="Run Encore Spark jobs for one run date.")
    parser.add_argument("--run-date", required=True, type=dt.date.fromisoformat, help="logical date YYYY-MM-DD")
    parser.add_argument("--job", action="append", choices=JOBS, help="job to run (repeatable; default: all)")
    args = parser.parse_args(argv)
    stats = run_night(load_config(), args.run_date, jobs=tuple(args.job or JOBS))
    print(STATS_MARKER, json.dumps(stats, default=str), flush=True)
    return stats


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    main()
