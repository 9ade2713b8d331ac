"""Reading clean events from, and writing one dt= partition to, the Parquet lake."""

from __future__ import annotations

import datetime as dt
import logging

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from encore.config import EncoreConfig
from encore.contracts import CLEAN_EVENT, Column, spark_ddl

log = logging.getLogger(__name__)

ROWS_PER_OUTPUT_FILE = 2_000_000


def lookback_window(cfg: EncoreConfig, run_date: str | dt.date) -> tuple[dt.date, dt.date]:
    """First and last event date (inclusive) a run for ``run_date`` looks at."""
    end = run_date if isinstance(run_date, dt.date) else dt.date.fromisoformat(run_date)
    return end - dt.timedelta(days=cfg.sessions.lookback_days), end


def contract_schema(spark: SparkSession, columns: tuple[Column, ...]) -> StructType:
    return spark.createDataFrame([], spark_ddl(columns)).schema


def path_exists(spark: SparkSession, path: str) -> bool:
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    return hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).exists(hadoop_path)


def read_clean_events(spark: SparkSession, cfg: EncoreConfig, run_date: str | dt.date) -> DataFrame:
    """Clean events with partition dt and event date in the lookback window of ``run_date``.

    Columns are cast to the CLEAN_EVENT contract; a missing column is an error naming it.
    """
    path = cfg.lake_path("events_clean")
    if not path_exists(spark, path):
        raise FileNotFoundError(f"events_clean: no clean events at {path} (run ingest first)")
    start, end = lookback_window(cfg, run_date)
    raw = spark.read.option("basePath", path).parquet(path)
    missing = [c.name for c in CLEAN_EVENT if c.name not in raw.columns]
    if missing or "dt" not in raw.columns:
        raise ValueError(f"events_clean at {path}: missing columns {missing + (['dt'] if 'dt' not in raw.columns else [])}")
    in_window = F.col("dt").cast("date").between(F.lit(start), F.lit(end)) & F.to_date("ts").between(
        F.lit(start), F.lit(end)
    )
    schema = contract_schema(spark, CLEAN_EVENT)
    return raw.where(in_window).select([F.col(f.name).cast(f.dataType).alias(f.name) for f in schema.fields])


def write_partition(df: DataFrame, path: str) -> int:
    """Overwrite exactly one ``dt=`` partition directory with ``df``; returns the row count.

    Writing to the partition path (instead of partitionBy on the table) also replaces a
    partition whose re-run produced no rows, so a re-run of a date is always idempotent.
    The frame is cached (unless the caller did) so the count and the coalesced write share
    one computation and the output has few files.
    """
    owned = not df.is_cached
    if owned:
        df = df.persist()
    rows = df.count()
    files = max(1, -(-rows // ROWS_PER_OUTPUT_FILE))
    df.coalesce(files).write.mode("overwrite").parquet(path)
    if owned:
        df.unpersist()
    log.info("wrote %d rows in %d file(s) to %s", rows, files, path)
    return rows
