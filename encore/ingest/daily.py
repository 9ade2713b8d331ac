"""Ingest one logical date: landing files -> validated clean events + quarantine in the lake."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from encore.core import lake
from encore.core.config import EncoreConfig
from encore.core.contracts import ITEM_CATALOG, RAW_EVENT_COLUMNS, arrow_schema
from encore.core.errors import RawFileError
from encore.ingest.landing import landing_files, night_sources, read_landing_file
from validations.raw_events import validate_raw_events

log = logging.getLogger(__name__)


OWNED_TABLES = ("events_clean", "quarantine", "item_catalog", "ingest_reports")


def ingest_day(cfg: EncoreConfig, run_date: str | dt.date) -> dict:
    """Validate the date's landing files and (re)write its clean and quarantine partitions.

    Returns the run's data-quality summary (also written to the lake as
    ``ingest_reports/dt=D``): raw, clean and quarantined counts per reason. A date with
    no clean event is not an error here (history days may be empty); the nightly stage
    decides (``encore.nightly.stages.validate_raw``).
    """
    run_date = dt.date.fromisoformat(str(run_date)).isoformat()
    lake.clean_stale_writes(cfg, *OWNED_TABLES)
    files = landing_files(cfg, run_date)
    if not files:
        raise RawFileError(f"no landing files for {run_date} under {cfg.paths.landing}/<source>/dt={run_date}/ "
                           f"(sources read: {', '.join(night_sources(cfg)) or 'none landed'})")
    tables, source_file, source_row, delivered = [], [], [], []
    for path in files:
        table = read_landing_file(path)
        tables.append(table)
        source_file += [str(path)] * table.num_rows
        source_row += range(table.num_rows)
        delivered += [path.stat().st_mtime] * table.num_rows
    raw = pa.concat_tables(tables)
    log.info("ingest %s: %d rows from %d file(s)", run_date, raw.num_rows, len(files))
    order = _precedence(raw, delivered, source_file, source_row)
    raw = raw.take(pa.array(order, pa.int64()))
    source_file = [source_file[i] for i in order]
    source_row = [source_row[i] for i in order]
    earlier = _earlier_events(cfg, run_date, raw)
    result = validate_raw_events(raw, cfg, run_date, source_file, source_row, earlier=earlier)
    lake.write_partition(cfg, "events_clean", run_date, result.clean)
    lake.write_partition(cfg, "quarantine", run_date, result.quarantine)
    lake.write_partition(cfg, "item_catalog", run_date, _catalog(cfg))
    summary = {
        "run_date": run_date,
        "files": [str(f) for f in files],
        "raw_rows": result.raw_rows,
        "clean_rows": result.clean.num_rows,
        "quarantined_rows": result.quarantine.num_rows,
        "reconciles": result.reconciles,
        "quarantine_reasons": result.reasons,
    }
    report = pa.table({"run_date": [run_date], "summary_json": [json.dumps(summary)]})
    lake.write_partition(cfg, "ingest_reports", run_date, report)
    log.info(
        "ingest %s: raw %d = clean %d + quarantined %d %s",
        run_date, result.raw_rows, result.clean.num_rows, result.quarantine.num_rows, result.reasons or "",
    )
    return summary


def _precedence(raw: pa.Table, delivered: list[float], source_file: list[str], source_row: list[int]) -> list[int]:
    """Row order in which the first copy of a duplicate event is the one kept: the most complete
    copy (most non-null raw columns), then the earliest delivered file, then file and row,
    so which copy survives depends on the data and its delivery, not on source names."""
    filled = sum(pc.cast(pc.is_valid(raw[name]), pa.int8()).to_numpy(zero_copy_only=False)
                 for name in RAW_EVENT_COLUMNS) if raw.num_rows else []
    keys = zip((-int(f) for f in filled), delivered, source_file, source_row, range(raw.num_rows))
    return [key[-1] for key in sorted(keys)]


def _earlier_events(cfg: EncoreConfig, run_date: str, raw: pa.Table) -> pa.Table | None:
    """Keys and provenance of the clean events of earlier dates that could hold a copy of
    these rows: an event of day t is ingested no earlier than t - labels.max_future_days."""
    first_ts = pc.min(raw["ts"]).as_py() if raw.num_rows else None
    if first_ts is None:
        return None
    since = (first_ts.date() - dt.timedelta(days=cfg.labels.max_future_days)).isoformat()
    dates = [d for d in lake.partition_dates(cfg, "events_clean") if since <= d < run_date]
    if not dates:
        return None
    columns = ["user_id", "item_id", "ts", "source_file", "source_row"]
    parts = []
    for day in dates:
        part = lake.read_partition(cfg, "events_clean", day).select(columns)
        parts.append(part.append_column("dt", pa.array([day] * part.num_rows, pa.string())))
    return pa.concat_tables(parts)


def _catalog(cfg: EncoreConfig) -> pa.Table:
    """Union of the sources' item catalogs (empty table with the contract if none is delivered)."""
    schema = arrow_schema(ITEM_CATALOG)
    parts = [
        pq.read_table(path).select(schema.names).cast(schema)
        for path in sorted(Path(cfg.paths.landing).glob("*/catalog.parquet"))
    ]
    return pa.concat_tables(parts) if parts else schema.empty_table()
