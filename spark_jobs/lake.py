"""Reading clean events from, and writing one dt= partition to, the Parquet lake."""

from __future__ import annotations

import datetime as dt
import logging

import pyarrow.fs as pafs
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from encore.core.config import EncoreConfig
from encore.core.contracts import CLEAN_EVENT, Column, spark_ddl
from encore.core.lake import (
    SUCCESS,
    filesystem,
    new_staging_dir,
    partition_dates,
    path_exists,
    publish_staged_partition,
)

log = logging.getLogger(__name__)

ROWS_PER_OUTPUT_FILE = 2_000_000


def lookback_window(cfg: EncoreConfig, run_date: str | dt.date) -> tuple[dt.date, dt.date]:
    """First and last event date (inclusive) a run for ``run_date`` looks at."""
    end = run_date if isinstance(run_date, dt.date) else dt.date.fromisoformat(run_date)
    return end - dt.timedelta(days=cfg.sessions.lookback_days), end


def contract_schema(spark: SparkSession, columns: tuple[Column, ...]) -> StructType:
    return spark.createDataFrame([], spark_ddl(columns)).schema


def read_clean_events(spark: SparkSession, cfg: EncoreConfig, start: dt.date, end: dt.date) -> DataFrame:
    """Clean events with partition dt and event date in ``[start, end]``.

    Only the window's partition directories are listed and read, so the cost does not
    grow with the lake's history. Columns are cast to the CLEAN_EVENT contract; a missing
    column is an error naming it.
    """
    path = cfg.lake_path("events_clean")
    if not path_exists(path):  # checked here, not in the JVM: a Spark Connect client has none
        raise FileNotFoundError(f"events_clean: no clean events at {path} (run ingest first)")
    in_window = [day for day in partition_dates(cfg, "events_clean") if start.isoformat() <= day <= end.isoformat()]
    # no partition in the window: read the table, the date filter leaves no rows
    partitions = [cfg.lake_path("events_clean", day) for day in in_window] or [path]
    raw = spark.read.option("basePath", path).parquet(*partitions)
    missing = [c.name for c in CLEAN_EVENT if c.name not in raw.columns]
    if missing or "dt" not in raw.columns:
        raise ValueError(f"events_clean at {path}: missing columns {missing + (['dt'] if 'dt' not in raw.columns else [])}")
    in_dates = F.col("dt").cast("date").between(F.lit(start), F.lit(end)) & F.to_date("ts").between(
        F.lit(start), F.lit(end)
    )
    schema = contract_schema(spark, CLEAN_EVENT)
    return raw.where(in_dates).select([F.col(f.name).cast(f.dataType).alias(f.name) for f in schema.fields])


def output_files(rows: int) -> int:
    return max(1, -(-rows // ROWS_PER_OUTPUT_FILE))


def write_partition(df: DataFrame, cfg: EncoreConfig, table_name: str, run_date: dt.date, rows: int) -> int:
    """Replace exactly the ``dt=run_date`` partition of a lake table with ``df`` (``rows`` rows);
    returns ``rows``.

    Spark writes into a hidden staging directory (its ``_SUCCESS`` marker comes last) that is
    then renamed into place (``encore.core.lake.publish_staged_partition``), so a kill mid-write
    leaves no half-written ``dt=`` folder, only a hidden leftover the next run removes. Writing
    the partition itself also replaces one whose re-run produced no rows, so a re-run of a date
    is always idempotent. Callers know the row count from their stats pass, so writing is the
    frame's only action; coalescing to ``rows / ROWS_PER_OUTPUT_FILE`` keeps the file count small.
    """
    files = output_files(rows)
    staging = new_staging_dir(cfg, table_name)
    df.coalesce(files).write.mode("overwrite").parquet(staging)
    path = publish_staged_partition(cfg, table_name, run_date, staging)
    log.info("wrote %d rows in %d file(s) to %s", rows, files, path)
    return rows


def write_date_partitions(df: DataFrame, cfg: EncoreConfig, table_name: str) -> list[str]:
    """Replace the ``dt=`` partitions of a lake table present in ``df`` (column ``dt``), only those;
    returns their dates.

    One shuffle by ``dt`` gives one task, hence few files, per date. The job writes into a
    hidden staging directory; once it has committed (its ``_SUCCESS`` marker), each date is
    renamed into place with a marker of its own, so an interrupted job leaves no partition
    that looks complete.
    """
    staging = new_staging_dir(cfg, table_name)
    (
        df.repartition("dt")
        .write.mode("overwrite")
        .option("partitionOverwriteMode", "static")  # a fresh directory: static writes the _SUCCESS marker
        .option("maxRecordsPerFile", ROWS_PER_OUTPUT_FILE)
        .partitionBy("dt")
        .parquet(staging)
    )
    fs, root = filesystem(staging)
    if not path_exists(f"{staging}/{SUCCESS}"):
        raise RuntimeError(f"Spark did not commit {staging} (no {SUCCESS}); the partitions were not replaced")
    written = [info.base_name[3:] for info in fs.get_file_info(pafs.FileSelector(root))
               if info.type == pafs.FileType.Directory and info.base_name.startswith("dt=")]
    for day in sorted(written):
        publish_staged_partition(cfg, table_name, day, f"{staging}/dt={day}")
    fs.delete_dir(root)
    return sorted(written)
