"""All nightly Spark jobs for one run date, sharing one sessionized frame."""

from __future__ import annotations

import datetime as dt
import logging
import time

from pyspark.sql import SparkSession

from encore.config import EncoreConfig
from spark_jobs.lake import lookback_window
from spark_jobs.phns_pools import run_phns_pools
from spark_jobs.sequences import run_sequences
from spark_jobs.session import configure_session, get_spark
from spark_jobs.sessionize import build_sessionized, run_sessionize

log = logging.getLogger(__name__)

JOBS = ("sessionize", "sequences", "phns_pools")


def run_all(
    cfg: EncoreConfig, run_date: str | dt.date, spark: SparkSession | None = None, jobs: tuple[str, ...] = JOBS
) -> dict:
    """Sessionize + label, sequences and PHNS pools/negatives for ``run_date``; stats per job."""
    unknown = set(jobs) - set(JOBS)
    if unknown:
        raise ValueError(f"unknown spark job(s) {sorted(unknown)}; known: {JOBS}")
    spark = configure_session(spark) if spark else get_spark(cfg, "encore-nightly")
    start_time = time.monotonic()
    _, day = lookback_window(cfg, run_date)
    sessionized = build_sessionized(spark, cfg, day).persist()
    runners = {"sessionize": run_sessionize, "sequences": run_sequences, "phns_pools": run_phns_pools}
    stats: dict = {"run_date": day.isoformat()}
    for job in jobs:
        log.info("spark job %s for %s", job, day)
        stats[job] = runners[job](cfg, day, spark=spark, sessionized=sessionized)
    sessionized.unpersist()
    stats["seconds"] = round(time.monotonic() - start_time, 2)
    return stats
