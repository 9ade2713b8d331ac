"""The one way Encore jobs get a SparkSession (in-process or under spark-submit)."""

from __future__ import annotations

import datetime as dt
import logging
import os

from pyspark.sql import SparkSession

from encore.config import EncoreConfig
from encore.lake import partition_bytes
from spark_jobs.lake import lookback_window

log = logging.getLogger(__name__)


def get_spark(cfg: EncoreConfig, app_name: str, run_date: str | dt.date | None = None) -> SparkSession:
    """SparkSession configured from ``cfg.spark``: UTC, dynamic partition overwrite, quiet logs.

    Under ``spark-submit`` (the driver JVM already exists) master and driver memory
    come from the submit command line, so they are not overridden here. In-process
    (local) sessions run without the web UI and with the JIT that ``quick_jit`` picks for
    the clean events of ``run_date``'s lookback window.
    """
    builder = (
        SparkSession.builder.appName(app_name)
        .config("spark.sql.shuffle.partitions", str(cfg.spark.shuffle_partitions))
        .config("spark.driver.extraJavaOptions", "-Duser.timezone=UTC")
        .config("spark.ui.showConsoleProgress", "false")
    )
    if "PYSPARK_GATEWAY_PORT" not in os.environ:
        java_options = "-Duser.timezone=UTC" + (" -XX:TieredStopAtLevel=1" if quick_jit(cfg, run_date) else "")
        builder = (
            builder.master(cfg.spark.master)
            .config("spark.driver.memory", cfg.spark.driver_memory)
            .config("spark.ui.enabled", "false")
            .config("spark.driver.extraJavaOptions", java_options)
        )
    spark = configure_session(builder.getOrCreate())
    spark.sparkContext.setLogLevel("WARN")
    log.info("spark session %s on %s", app_name, spark.sparkContext.master)
    return spark


def quick_jit(cfg: EncoreConfig, run_date: str | dt.date | None) -> bool:
    """Whether the JVM compiles with C1 only (``-XX:TieredStopAtLevel=1``).

    A small night is short-lived, mostly cold code: C2 compilation costs more CPU than it
    saves (about a third of the default nightly on 2 cores); at 1M events (37 MB of
    ``spark_jobs.bench`` data) both take about as long; at 3M (110 MB) full JIT ran the
    jobs in 81-89 s against 117-133 s quick. ``auto`` decides by the size of the clean
    events the run reads (``spark.quick_jit_max_mb``).
    """
    if cfg.spark.jit != "auto":
        return cfg.spark.jit == "quick"
    if run_date is None:
        return False
    start, end = lookback_window(cfg, run_date)
    size = partition_bytes(cfg, "events_clean", start.isoformat(), end.isoformat())
    return size <= cfg.spark.quick_jit_max_mb * 2**20


def configure_session(spark: SparkSession) -> SparkSession:
    """Runtime settings every Encore job relies on, also applied to a caller's session."""
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    spark.conf.set("spark.sql.sources.partitionOverwriteMode", "dynamic")
    # Arrow and DuckDB read TIMESTAMP_MICROS as timestamp[us, UTC]; INT96 is legacy.
    spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
    # Shuffle partitions are an upper bound: AQE merges them to the data size (one task
    # for a small nightly day, several for a large backfill).
    spark.conf.set("spark.sql.adaptive.enabled", "true")
    spark.conf.set("spark.sql.adaptive.coalescePartitions.enabled", "true")
    # The sessionized frame is cached once and scanned a few times: compressing the cache
    # cost more than half of the cache build (123 s vs 76 s at 10M events on 2 cores).
    spark.conf.set("spark.sql.inMemoryColumnarStorage.compressed", "false")
    return spark
