"""The DuckDB warehouse: atomic publishing of the ``recommendations`` table."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import duckdb
import pyarrow as pa

from encore.core.config import EncoreConfig
from encore.core.contracts import RECOMMENDATION, RECOMMENDATION_KEY, arrow_schema

log = logging.getLogger(__name__)

_SQL_TYPES = {"date": "DATE", "string": "VARCHAR", "int32": "INTEGER", "double": "DOUBLE", "timestamp": "TIMESTAMPTZ"}


class PublishError(RuntimeError):
    """Publishing was aborted; the previous contents of the table are intact."""


def connect(cfg: EncoreConfig, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    Path(cfg.paths.warehouse).parent.mkdir(parents=True, exist_ok=True)
    return duckdb.connect(cfg.paths.warehouse, read_only=read_only)


def ensure_recommendations_table(con: duckdb.DuckDBPyConnection) -> None:
    columns = ",\n  ".join(
        f"{c.name} {_SQL_TYPES[c.type]}{'' if c.nullable else ' NOT NULL'}" for c in RECOMMENDATION
    )
    con.execute(
        f"CREATE TABLE IF NOT EXISTS recommendations (\n  {columns},\n"
        f"  PRIMARY KEY ({', '.join(RECOMMENDATION_KEY)})\n)"
    )
    con.execute(
        "CREATE OR REPLACE VIEW recommendations_latest AS "
        "SELECT * FROM recommendations WHERE run_date = (SELECT max(run_date) FROM recommendations)"
    )


def _verify_in_transaction(con: duckdb.DuckDBPyConnection, run_date: dt.date, expected_rows: int) -> None:
    """Last check before commit: the date holds exactly the rows we inserted."""
    (count,) = con.execute("SELECT count(*) FROM recommendations WHERE run_date = ?", [run_date]).fetchone()
    if count != expected_rows:
        raise PublishError(f"recommendations for {run_date}: {count} rows in table, expected {expected_rows}")


def publish_recommendations(cfg: EncoreConfig, run_date: str | dt.date, recs: pa.Table) -> int:
    """Replace the date's rows of ``recommendations`` with ``recs`` in one transaction.

    Readers see either the previous rows or the new ones: the delete and the
    insert commit together, and any error rolls both back.
    """
    run_date = dt.date.fromisoformat(str(run_date))
    recs = recs.select(arrow_schema(RECOMMENDATION).names).cast(arrow_schema(RECOMMENDATION))
    dates = set(recs.column("run_date").to_pylist())
    if dates - {run_date}:
        raise PublishError(f"recommendations to publish for {run_date} contain other run dates: {sorted(dates)}")
    con = connect(cfg)
    try:
        ensure_recommendations_table(con)
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute("DELETE FROM recommendations WHERE run_date = ?", [run_date])
            con.register("incoming_recommendations", recs)
            con.execute("INSERT INTO recommendations SELECT * FROM incoming_recommendations")
            _verify_in_transaction(con, run_date, recs.num_rows)
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
    finally:
        con.close()
    log.info("published %d recommendation rows for %s into %s", recs.num_rows, run_date, cfg.paths.warehouse)
    return recs.num_rows
