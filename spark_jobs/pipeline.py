"""All nightly Spark jobs for one run date, sharing one sessionized frame; history backfill."""

from __future__ import annotations

import datetime as dt
import logging
import time

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from encore.core.config import EncoreConfig
from encore.core.contracts import SESSIONIZED_EVENT
from encore.core.lake import clean_stale_writes, partition_dates
from spark_jobs.lake import (
    contract_schema,
    lookback_window,
    read_clean_events,
    write_date_partitions,
    write_partition,
)
from spark_jobs.phns_pools import run_phns_pools
from spark_jobs.sequences import run_sequences
from spark_jobs.session import configure_session, get_spark
from spark_jobs.sessionize import build_sessionized, run_sessionize, sessionize_events

log = logging.getLogger(__name__)

JOBS = ("sessionize", "sequences", "phns_pools")
TABLES = ("sessionized_events", "sequences", "phns_pools", "phns_negatives")  # the lake tables these jobs own


def run_all(
    cfg: EncoreConfig, run_date: str | dt.date, spark: SparkSession | None = None, jobs: tuple[str, ...] = JOBS
) -> dict:
    """Sessionize + label, sequences and PHNS pools/negatives for ``run_date``; stats per job."""
    unknown = set(jobs) - set(JOBS)
    if unknown:
        raise ValueError(f"unknown spark job(s) {sorted(unknown)}; known: {JOBS}")
    spark = configure_session(spark) if spark else get_spark(cfg, "encore-nightly", run_date)
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


def run_night(
    cfg: EncoreConfig, run_date: str | dt.date, spark: SparkSession | None = None, jobs: tuple[str, ...] = JOBS
) -> dict:
    """The nightly Spark task, in-process or under spark-submit: the lookback window's missing
    sessionized history (a no-op once written), then ``run_all``. First removes what an
    interrupted earlier run of these jobs left in their tables."""
    clean_stale_writes(cfg, *TABLES)
    spark = configure_session(spark) if spark else get_spark(cfg, "encore-nightly", run_date)
    history = backfill_sessionized(cfg, run_date, spark=spark) if "sessionize" in jobs else {"rows": {}}
    stats = run_all(cfg, run_date, spark=spark, jobs=jobs)
    stats["history_sessionized_dates"] = len(history["rows"])
    return stats


def backfill_sessionized(cfg: EncoreConfig, until: str | dt.date, spark: SparkSession | None = None) -> dict:
    """Write sessionized_events for every clean-event date in the lookback window before ``until``
    that has no partition yet, in one Spark pass (one read, one sessionization, one write).

    Each date gets the rows its own nightly run writes: sessions from the lookback window
    and next-positive targets only within the date (a nightly run cannot see the next
    day). Existing partitions are never rewritten. (A session longer than the lookback
    window could start earlier than in a per-date run; gap sessions cannot.)
    """
    until = until if isinstance(until, dt.date) else dt.date.fromisoformat(until)
    first = until - dt.timedelta(days=cfg.sessions.lookback_days)
    done = set(partition_dates(cfg, "sessionized_events"))
    missing = [
        day for day in partition_dates(cfg, "events_clean")
        if first.isoformat() <= day < until.isoformat() and day not in done
    ]
    stats: dict = {"until": until.isoformat(), "rows": {}}
    if not missing:
        return stats
    spark = configure_session(spark) if spark else get_spark(cfg, "encore-backfill-sessionized", until)
    start_time = time.monotonic()
    days = [dt.date.fromisoformat(day) for day in missing]
    events = read_clean_events(spark, cfg, lookback_window(cfg, days[0])[0], days[-1])
    sessionized = sessionize_events(events, cfg, targets_within_day=True).withColumn("dt", F.to_date("ts"))
    table = cfg.lake_path("sessionized_events")
    write_date_partitions(
        sessionized.where(F.col("dt").isin(days)).select(*(c.name for c in SESSIONIZED_EVENT), "dt"),
        cfg, "sessionized_events",
    )
    present = set(partition_dates(cfg, "sessionized_events"))
    if present & set(missing):
        written = spark.read.option("basePath", table).parquet(
            *(cfg.lake_path("sessionized_events", day) for day in missing if day in present)
        )
        stats["rows"] = {r["day"]: r["count"] for r in written.groupBy(F.col("dt").cast("string").alias("day")).count().collect()}
    empty = spark.createDataFrame([], contract_schema(spark, SESSIONIZED_EVENT))
    for day in missing:
        if day not in present:  # a date without sessionized rows still gets its (empty) partition
            stats["rows"][day] = write_partition(empty, cfg, "sessionized_events", dt.date.fromisoformat(day), 0)
    stats["seconds"] = round(time.monotonic() - start_time, 2)
    log.info("backfilled sessionized_events %s", stats)
    return stats
