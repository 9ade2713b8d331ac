"""Sessionize and label clean events (issue #4, step 1).

Sessions are gap-based (new session after more than ``sessions.gap_minutes`` of
inactivity) unless the source gives ``session_id``. Gap-based ids are
``user_id#<epoch seconds of the first event>``, so a session crossing midnight has
the same id in both days. All logic is built-in Spark SQL (windows over one sort
per user), no Python UDFs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import time

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from encore.core.config import EncoreConfig, load_config
from encore.core.contracts import SESSIONIZED_EVENT, completion_sql, label_sql
from spark_jobs.lake import lookback_window, read_clean_events, write_partition
from spark_jobs.session import configure_session, get_spark

log = logging.getLogger(__name__)

# One window order for every step: source sessions grouped together, gap-based events
# (session_id null, sorted first) in time order; event_id breaks timestamp ties.
USER_ORDER = "PARTITION BY user_id ORDER BY session_id ASC NULLS FIRST, ts, event_id"


def label_events(events: DataFrame, cfg: EncoreConfig) -> DataFrame:
    """Fill completion and add is_skip / is_abandoned / engagement (contracts.label_sql)."""
    labels = label_sql(cfg.labels)
    filled = events.withColumn("completion", F.expr(completion_sql()))
    return filled.select(
        "*",
        *(F.expr(labels[name]).alias(name) for name in ("is_skip", "is_abandoned", "engagement")),
    )


def sessionize_events(events: DataFrame, cfg: EncoreConfig, targets_within_day: bool = False) -> DataFrame:
    """Labelled, sessionized events (SESSIONIZED_EVENT columns) for every input event.

    ``targets_within_day`` keeps a next positive only when it falls on the event's own
    day, as the nightly run of that day (which cannot see the next day) computes it.
    """
    gap_us = cfg.sessions.gap_minutes * 60 * 1_000_000
    window = f"OVER ({USER_ORDER})"
    running = f"OVER ({USER_ORDER} ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"
    labelled = label_events(events, cfg)
    with_breaks = labelled.select(
        "*",
        F.expr(f"row_number() {window}").alias("user_rn"),
        F.expr(
            "CASE WHEN session_id IS NOT NULL "
            f"THEN coalesce(lag(session_id) {window} <> session_id, TRUE) "
            f"ELSE coalesce(unix_micros(ts) - unix_micros(lag(ts) {window}) > {gap_us}, TRUE) END"
        ).alias("is_session_start"),
    )
    # One more pass (one window operator): session start, and the next positive and next
    # session start of the user; the positive is in the same session when no start precedes it.
    with_targets = with_breaks.select(
        "*",
        F.expr(f"last(CASE WHEN is_session_start THEN user_rn END, TRUE) {running}").alias("start_rn"),
        F.expr(f"last(CASE WHEN is_session_start THEN ts END, TRUE) {running}").alias("session_start"),
        F.expr(
            "lead(CASE WHEN NOT is_skip THEN named_struct('item_id', item_id, 'user_rn', user_rn, 'ts', ts) END, 1) "
            f"IGNORE NULLS {window}"
        ).alias("next_pos"),
        F.expr(f"lead(CASE WHEN is_session_start THEN user_rn END, 1) IGNORE NULLS {window}").alias("next_start_rn"),
    )
    same_target_scope = "coalesce(next_pos.user_rn < next_start_rn, TRUE)"
    if targets_within_day:
        same_target_scope += " AND to_date(next_pos.ts) = to_date(ts)"
    return with_targets.select(
        "user_id",
        "item_id",
        "ts",
        "event_id",
        F.expr("coalesce(session_id, concat(user_id, '#', CAST(unix_seconds(session_start) AS STRING)))").alias(
            "session_id"
        ),
        F.expr("CAST(user_rn - start_rn AS INT)").alias("position"),
        "completion",
        "skip_level",
        "rating",
        "is_skip",
        "is_abandoned",
        "engagement",
        F.expr(f"CASE WHEN {same_target_scope} THEN next_pos.item_id END").alias("next_positive_item_id"),
        "source",
    )


def build_sessionized(spark: SparkSession, cfg: EncoreConfig, run_date: str | dt.date) -> DataFrame:
    """Sessionized events of the whole lookback window of ``run_date`` (not yet written)."""
    return sessionize_events(read_clean_events(spark, cfg, *lookback_window(cfg, run_date)), cfg)


def run_sessionize(
    cfg: EncoreConfig, run_date: str | dt.date, spark: SparkSession | None = None, sessionized: DataFrame | None = None
) -> dict:
    """Write sessionized_events/dt=run_date (events of that day, sessions from the lookback).

    ``sessionized`` is the caller's cached frame of the lookback window (pipeline.run_all).
    """
    spark = configure_session(spark) if spark else get_spark(cfg, "encore-sessionize", run_date)
    start_time = time.monotonic()
    _, day = lookback_window(cfg, run_date)
    shared = sessionized is not None
    sessionized = sessionized if shared else build_sessionized(spark, cfg, day)
    of_day = sessionized.where(F.to_date("ts") == F.lit(day)).select([c.name for c in SESSIONIZED_EVENT])
    if not shared:  # the count and the write share one sessionization
        of_day = of_day.persist()
    rows = write_partition(of_day, cfg, "sessionized_events", day, of_day.count())
    if not shared:
        of_day.unpersist()
    stats = {"run_date": day.isoformat(), "sessionized_events": rows, "seconds": round(time.monotonic() - start_time, 2)}
    log.info("sessionize %s", stats)
    return stats


def parse_run_date(description: str) -> str:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--run-date", required=True, type=dt.date.fromisoformat, help="logical date YYYY-MM-DD")
    return parser.parse_args().run_date.isoformat()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    print(run_sessionize(load_config(), parse_run_date("Sessionize and label clean events for one run date.")))
