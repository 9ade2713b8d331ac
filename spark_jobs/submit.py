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
import sys
from pathlib import Path

from encore.config import EncoreConfig, load_config

SUBMIT_SCRIPT = Path(__file__).resolve()


def submit_command(cfg: EncoreConfig, run_date: str | dt.date, jobs: tuple[str, ...] = ()) -> list[str]:
    """argv for spark-submit against ``cfg.spark.master`` (the driver imports the installed package)."""
    spark_submit = Path(sys.executable).with_name("spark-submit")
    args = [
        str(spark_submit if spark_submit.exists() else "spark-submit"),
        "--master", cfg.spark.master,
        "--driver-memory", cfg.spark.driver_memory,
        "--conf", f"spark.sql.shuffle.partitions={cfg.spark.shuffle_partitions}",
        "--conf", f"spark.pyspark.python={sys.executable}",
        "--conf", f"spark.pyspark.driver.python={sys.executable}",
        str(SUBMIT_SCRIPT),
        "--run-date", str(run_date),
    ]
    for job in jobs:
        args += ["--job", job]
    return args


def main(argv: list[str] | None = None) -> dict:
    from spark_jobs.pipeline import JOBS, run_all

    parser = argparse.ArgumentParser(description="Run Encore Spark jobs for one run date.")
    parser.add_argument("--run-date", required=True, type=dt.date.fromisoformat, help="logical date YYYY-MM-DD")
    parser.add_argument("--job", action="append", choices=JOBS, help="job to run (repeatable; default: all)")
    args = parser.parse_args(argv)
    stats = run_all(load_config(), args.run_date, jobs=tuple(args.job or JOBS))
    print(json.dumps(stats, default=str))
    return stats


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    main()
