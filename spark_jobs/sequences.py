"""Per-user training sequences as of the run date (issue #4, step 2).

One row per user: chronological item / skip / engagement / time arrays of the most
recent ``sessions.sequence_events`` events (at least ``training.max_seq_len + 1``: a
full-length window before the last event), with temporal leave-last-out targets: ``test_idx`` = last positive
(non-skipped) event, ``valid_idx`` = the positive before it, and the distinct items of
the user's older events (``earlier_item_ids``), so evaluation can exclude the user's
whole history. Users with fewer than ``MIN_POSITIVES`` positives in that window cannot
be split and are excluded (counted).
"""

from __future__ import annotations

import datetime as dt
import logging
import time

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from encore.core.config import EncoreConfig, load_config
from encore.core.contracts import SEQUENCE
from spark_jobs.lake import lookback_window, write_partition
from spark_jobs.session import configure_session, get_spark
from spark_jobs.sessionize import build_sessionized, parse_run_date

log = logging.getLogger(__name__)

MIN_POSITIVES = 3  # train on >= 1, validate on 1, test on 1


def sequence_length(cfg: EncoreConfig) -> int:
    return max(cfg.sessions.sequence_events, cfg.training.max_seq_len + 1)


def build_user_sequences(sessionized: DataFrame, cfg: EncoreConfig) -> DataFrame:
    """All users' truncated sequences with n_positives (before the MIN_POSITIVES filter).

    Also counts each user's sessions and sessions with a next-positive target, so every
    stat comes from this one per-user pass (sessionized is already partitioned by user).
    Both are counted on session starts (position 0), not as sets of session ids: a
    session has a target iff its first event has one (a later event's next positive
    also follows the first event in the same session).
    """
    keep = sequence_length(cfg)
    session_start = F.col("position") == 0
    per_user = sessionized.groupBy("user_id").agg(
        F.sort_array(F.collect_list(F.struct("ts", "event_id", "item_id", "is_skip", "engagement"))).alias("events"),
        F.count_if(session_start).alias("n_sessions"),
        F.count_if(session_start & F.col("next_positive_item_id").isNotNull()).alias("n_sessions_with_target"),
    )
    truncated = per_user.select(
        "user_id",
        F.size("events").cast("long").alias("n_events"),
        F.expr(f"slice(events, greatest(size(events) - {keep} + 1, 1), {keep})").alias("events"),
        F.expr(f"array_sort(array_distinct(slice(events, 1, greatest(size(events) - {keep}, 0)).item_id))")
        .alias("earlier_item_ids"),
        "n_sessions",
        "n_sessions_with_target",
    )
    with_positions = truncated.select(
        "*",
        F.expr("filter(sequence(0, size(events) - 1), i -> NOT events[i].is_skip)").alias("positive_idx"),
    )
    # events.<field>: one field of every element, compiled (a transform lambda is interpreted per element)
    return with_positions.select(
        "user_id",
        F.col("events.item_id").alias("item_ids"),
        F.col("events.is_skip").alias("is_skip"),
        F.col("events.engagement").alias("completion"),
        F.col("events.ts").alias("ts"),
        F.expr("CAST(try_element_at(positive_idx, -2) AS INT)").alias("valid_idx"),
        F.expr("CAST(try_element_at(positive_idx, -1) AS INT)").alias("test_idx"),
        "earlier_item_ids",
        "n_events",
        F.size("positive_idx").alias("n_positives"),
        "n_sessions",
        "n_sessions_with_target",
    )


def sequence_stats(user_sequences: DataFrame) -> dict:
    """Users kept / excluded and sessions with / without a target, in one aggregation."""
    kept = F.col("n_positives") >= MIN_POSITIVES
    totals = user_sequences.agg(
        F.count("*").alias("users_total"),
        F.count(F.when(kept, 1)).alias("users_kept"),
        F.sum("n_sessions").alias("sessions_total"),
        F.sum("n_sessions_with_target").alias("sessions_with_target"),
    ).first()
    sessions_total = totals["sessions_total"] or 0
    return {
        "users_total": totals["users_total"],
        "users_kept": totals["users_kept"],
        "users_excluded_few_positives": totals["users_total"] - totals["users_kept"],
        "sessions_total": sessions_total,
        "sessions_without_target": sessions_total - (totals["sessions_with_target"] or 0),
    }


def run_sequences(
    cfg: EncoreConfig, run_date: str | dt.date, spark: SparkSession | None = None, sessionized: DataFrame | None = None
) -> dict:
    """Write sequences/dt=run_date; returns counts incl. excluded users and target-less sessions."""
    spark = configure_session(spark) if spark else get_spark(cfg, "encore-sequences", run_date)
    start_time = time.monotonic()
    _, day = lookback_window(cfg, run_date)
    sessionized = sessionized if sessionized is not None else build_sessionized(spark, cfg, run_date)
    # one row per user, read by the stats and by the write
    user_sequences = build_user_sequences(sessionized, cfg).persist()
    stats = {"run_date": day.isoformat(), **sequence_stats(user_sequences)}
    kept = user_sequences.where(F.col("n_positives") >= MIN_POSITIVES).select([c.name for c in SEQUENCE])
    stats["sequences"] = write_partition(kept, cfg, "sequences", day, stats["users_kept"])
    user_sequences.unpersist()
    stats["seconds"] = round(time.monotonic() - start_time, 2)
    log.info("sequences %s", stats)
    return stats


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    print(run_sequences(load_config(), parse_run_date("Build per-user training sequences for one run date.")))
