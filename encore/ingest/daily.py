"""Ingest one logical date: landing files -> validated clean events + quarantine in the lake."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from encore.core import lake
from encore.core.config import EncoreConfig
from encore.core.contracts import ITEM_CATALOG, arrow_schema
from encore.core.errors import RawFileError
from encore.ingest.landing import landing_files, read_landing_file
from validations.raw_events import validate_raw_events

log = logging.getLogger(__name__)


def ingest_day(cfg: EncoreConfig, run_date: str | dt.date) -> dict:
    """Validate the date's landing files and (re)write its clean and quarantine partitions.

    Returns the run's data-quality summary (also written to the lake as
    ``ingest_reports/dt=D``): raw, clean and quarantined counts per reason.
    """
    run_date = dt.date.fromisoformat(str(run_date)).isoformat()
    files = landing_files(cfg, run_date)
    if not files:
        raise RawFileError(f"no landing files for {run_date} under {cfg.paths.landing}/<source>/dt={run_date}/")
    tables, source_file, source_row = [], [], []
    for path in files:
        table = read_landing_file(path)
        tables.append(table)
        source_file += [str(path)] * table.num_rows
        source_row += range(table.num_rows)
    raw = pa.concat_tables(tables)
    log.info("ingest %s: %d rows from %d file(s)", run_date, raw.num_rows, len(files))
    result = validate_raw_events(raw, cfg, run_date, source_file, source_row)
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


def _catalog(cfg: EncoreConfig) -> pa.Table:
    """Union of the sources' item catalogs (empty table with the contract if none is delivered)."""
    schema = arrow_schema(ITEM_CATALOG)
    parts = [
        pq.read_table(path).select(schema.names).cast(schema)
        for path in sorted(Path(cfg.paths.landing).glob("*/catalog.parquet"))
    ]
    return pa.concat_tables(parts) if parts else schema.empty_table()
