"""The one way Encore jobs get a SparkSession (in-process, under spark-submit, or as a Spark Connect client)."""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path

from pyspark.sql import SparkSession

from encore.core.config import EncoreConfig
from encore.core.lake import partition_bytes
from spark_jobs.lake import lookback_window

log = logging.getLogger(__name__)


def get_spark(cfg: EncoreConfig, app_name: str, run_date: str | dt.date | None = None) -> SparkSession:
    """SparkSession configured from ``cfg.spark``: UTC, dynamic partition overwrite, quiet logs.

    Under ``spark-submit`` (the driver JVM already exists) master, driver memory and JVM
    options come from the submit command line (``submit.submit_command``). In-process
    (local) sessions run without the web UI, with the JIT that ``jit_mode`` picks for
    the clean events of ``run_date``'s lookback window and ``spark.java_options``.
    With ``spark.mode = connect`` the session is a client of the Spark Connect server at
    ``spark.remote``, whose master, memory and JVM options are the server's.
    """
    if cfg.spark.mode == "connect":
        spark = configure_session(SparkSession.builder.remote(cfg.spark.remote).getOrCreate())
        spark.conf.set("spark.sql.shuffle.partitions", str(cfg.spark.shuffle_partitions))
        log.info("spark connect session %s on %s", app_name, cfg.spark.remote)
        return spark
    builder = (
        SparkSession.builder.appName(app_name)
        .config("spark.sql.shuffle.partitions", str(cfg.spark.shuffle_partitions))
        .config("spark.ui.showConsoleProgress", "false")
    )
    if "PYSPARK_GATEWAY_PORT" not in os.environ:
        builder = (
            builder.master(cfg.spark.master)
            .config("spark.local.dir", spark_local_dir(cfg))
            .config("spark.driver.memory", cfg.spark.driver_memory)
            .config("spark.ui.enabled", "false")
            .config("spark.driver.extraJavaOptions", driver_java_options(cfg, run_date))
        )
    spark = configure_session(builder.getOrCreate())
    spark.sparkContext.setLogLevel("WARN")
    log.info("spark session %s on %s", app_name, spark.sparkContext.master)
    return spark


# JDK 17 defaults of the thresholds at which tiered compilation hands a method to C2
C2_THRESHOLDS = {"Tier4InvocationThreshold": 5000, "Tier4MinInvocationThreshold": 600,
                 "Tier4CompileThreshold": 15000, "Tier4BackEdgeThreshold": 40000}
HOT_C2_SCALE = 30
JIT_OPTIONS = {
    "quick": ["-XX:TieredStopAtLevel=1"],
    # C2 only for code 30x hotter than the JVM's default: the per-row loops, not the planner,
    # Janino and the SQL parser, which run thousands of times and kept C2 busy for minutes
    "hot": [f"-XX:{flag}={value * HOT_C2_SCALE}" for flag, value in C2_THRESHOLDS.items()],
    "full": [],
}


def spark_local_dir(cfg: EncoreConfig) -> str:
    """Spark's scratch space (shuffle and spill files) under the state dir's ``paths.tmp``,
    not the machine's /tmp, so a killed night's leftovers are found and removed."""
    path = Path(cfg.paths.tmp) / "spark"
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def driver_java_options(cfg: EncoreConfig, run_date: str | dt.date | None) -> str:
    """JVM options of the driver (under spark-submit also the executors'): UTC, temp files under
    ``paths.tmp``, the JIT ``jit_mode`` picks, ``spark.java_options``."""
    options = ["-Duser.timezone=UTC", f"-Djava.io.tmpdir={spark_local_dir(cfg)}", *JIT_OPTIONS[jit_mode(cfg, run_date)]]
    return " ".join(options + cfg.spark.java_options.split())


def jit_mode(cfg: EncoreConfig, run_date: str | dt.date | None) -> str:
    """How the driver JVM compiles: ``quick`` (C1 only), ``hot`` (C1, C2 for the hottest code) or ``full``.

    A small night is short-lived, mostly cold code: C2 compilation costs more CPU than it
    saves (about a third of the default nightly on 2 cores). On large inputs C2's faster code
    wins (at 10M events C1 only ran every stage 2.1x slower), but with the JVM's default
    thresholds (``full``) C2 also compiles the planner and code generator: at 10M events the
    JIT threads spent 173 s compiling on one core (Flight Recorder, ``benchmarks.spark_bench
    --profile``). ``hot`` leaves that code to C1: on one core the 10M jobs took 215.7 s against
    233.8 s ``full``; on two cores they take as long (README, Spark vs DuckDB).
    ``auto`` takes ``quick`` up to ``spark.quick_jit_max_mb`` of clean events read, ``hot`` above.
    """
    if cfg.spark.jit != "auto":
        return cfg.spark.jit
    if run_date is None:
        return "hot"
    start, end = lookback_window(cfg, run_date)
    size = partition_bytes(cfg, "events_clean", start.isoformat(), end.isoformat())
    return "quick" if size <= cfg.spark.quick_jit_max_mb * 2**20 else "hot"


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
