"""The warehouse: reading it, atomic publishing of ``recommendations``, the analysts' reader copy.

Two backends, chosen by ``cfg.deploy.warehouse``:

- ``duckdb`` (embedded default): the file ``paths.warehouse``. DuckDB lets one process write a
  file and nobody else open it meanwhile, so analysts never open that file: after the night's
  last write :func:`refresh_analyst_copy` copies it to ``analyst.duckdb`` beside it and swaps the
  copy in with one rename. An analyst's open connection keeps reading the previous copy (a
  complete night); the next connection opens tonight's.
- ``postgres`` (deployed mode, ``encore.core.postgres``): analysts and the night share the server;
  MVCC shows every reader the last committed state, so a publish is one transaction and
  readers never wait for it nor it for them.

Stages read through :func:`query` (DuckDB-style ``?`` parameters, Arrow result), which works
on both backends.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import duckdb
import psycopg2
import pyarrow as pa

from encore.core import faults, postgres
from encore.core.config import EncoreConfig
from encore.core.contracts import RECOMMENDATION, RECOMMENDATION_KEY, arrow_schema

log = logging.getLogger(__name__)

_SQL_TYPES = {"date": "DATE", "string": "VARCHAR", "int32": "INTEGER", "double": "DOUBLE", "timestamp": "TIMESTAMPTZ"}
LATEST_VIEW_SQL = "SELECT * FROM recommendations WHERE run_date = (SELECT max(run_date) FROM recommendations)"


class PublishError(RuntimeError):
    """Publishing was aborted; the previous contents of the table are intact."""


class WarehouseError(RuntimeError):
    """A read of the warehouse failed (no such table yet, no warehouse, a bad statement)."""


def connect(cfg: EncoreConfig, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection to the DuckDB warehouse file (the embedded backend; the night's own file)."""
    Path(cfg.paths.warehouse).parent.mkdir(parents=True, exist_ok=True)
    return duckdb.connect(cfg.paths.warehouse, read_only=read_only)


def query(cfg: EncoreConfig, sql: str, params: Sequence = ()) -> pa.Table:
    """Run one read-only statement on the configured warehouse; ``?`` marks a parameter.
    Raises :class:`WarehouseError` naming the warehouse when it fails."""
    if cfg.deploy.warehouse == "duckdb":
        try:
            with connect(cfg, read_only=True) as con:
                return con.sql(sql, params=list(params)).to_arrow_table()
        except duckdb.Error as exc:
            raise WarehouseError(f"DuckDB warehouse {cfg.paths.warehouse}: {exc}") from exc
    try:
        con = postgres.connect(cfg)
        try:
            con.set_session(readonly=True, autocommit=True)
            with con.cursor() as cur:
                cur.execute(sql.replace("%", "%%").replace("?", "%s"), list(params))
                names = [d.name for d in cur.description]
                rows = cur.fetchall()
        finally:
            con.close()
    except (psycopg2.Error, postgres.WarehouseUnavailable) as exc:
        where = f"{cfg.deploy.host}:{cfg.deploy.pg_port}/{cfg.deploy.pg_database}"
        raise WarehouseError(f"Postgres warehouse {where}: {str(exc).strip()}") from exc
    return pa.table({name: pa.array([row[i] for row in rows]) for i, name in enumerate(names)})


def has_table(cfg: EncoreConfig, name: str) -> bool:
    """Whether the warehouse holds a table or view ``name`` (in any schema)."""
    found = query(cfg, "SELECT count(*) AS n FROM information_schema.tables WHERE table_name = ?", [name])
    return found.column("n")[0].as_py() > 0


def ensure_recommendations_table(con: duckdb.DuckDBPyConnection) -> None:
    columns = ",\n  ".join(
        f"{c.name} {_SQL_TYPES[c.type]}{'' if c.nullable else ' NOT NULL'}" for c in RECOMMENDATION
    )
    con.execute(
        f"CREATE TABLE IF NOT EXISTS recommendations (\n  {columns},\n"
        f"  PRIMARY KEY ({', '.join(RECOMMENDATION_KEY)})\n)"
    )
    con.execute(f"CREATE OR REPLACE VIEW recommendations_latest AS {LATEST_VIEW_SQL}")


def _ensure_postgres_recommendations_table(cur) -> None:
    """Create the table and the view when missing; never replace them, since replacing a view
    takes a lock that would wait for every analyst transaction reading it."""
    cur.execute("SELECT to_regclass('recommendations') IS NULL, to_regclass('recommendations_latest') IS NULL")
    table_missing, view_missing = cur.fetchone()
    if table_missing:
        cur.execute(
            f"CREATE TABLE recommendations ({postgres.column_definitions(RECOMMENDATION)}, "
            f"PRIMARY KEY ({', '.join(RECOMMENDATION_KEY)}))"
        )
    if view_missing:
        cur.execute(f"CREATE VIEW recommendations_latest AS {LATEST_VIEW_SQL}")


def _verify_in_transaction(run_date: dt.date, rows_in_table: int, expected_rows: int) -> None:
    """Last check before commit: the date holds exactly the rows we inserted."""
    if rows_in_table != expected_rows:
        raise PublishError(f"recommendations for {run_date}: {rows_in_table} rows in table, expected {expected_rows}")


def _publish_duckdb(cfg: EncoreConfig, run_date: dt.date, recs: pa.Table) -> None:
    con = connect(cfg)
    try:
        ensure_recommendations_table(con)
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute("DELETE FROM recommendations WHERE run_date = ?", [run_date])
            faults.pause("publish_after_delete")
            con.register("incoming_recommendations", recs)
            con.execute("INSERT INTO recommendations SELECT * FROM incoming_recommendations")
            (count,) = con.execute("SELECT count(*) FROM recommendations WHERE run_date = ?", [run_date]).fetchone()
            _verify_in_transaction(run_date, count, recs.num_rows)
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
    finally:
        con.close()


def _publish_postgres(cfg: EncoreConfig, run_date: dt.date, recs: pa.Table) -> None:
    con = postgres.connect(cfg)
    try:
        with con:  # one transaction: commit on success, rollback on any error
            with con.cursor() as cur:
                _ensure_postgres_recommendations_table(cur)
                cur.execute("DELETE FROM recommendations WHERE run_date = %s", [run_date])
                faults.pause("publish_after_delete")
                postgres.copy_arrow(cur, "recommendations", recs)
                cur.execute("SELECT count(*) FROM recommendations WHERE run_date = %s", [run_date])
                _verify_in_transaction(run_date, cur.fetchone()[0], recs.num_rows)
    finally:
        con.close()


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
    if cfg.deploy.warehouse == "postgres":
        _publish_postgres(cfg, run_date, recs)
        where = f"postgres {cfg.deploy.host}:{cfg.deploy.pg_port}/{cfg.deploy.pg_database}"
    else:
        _publish_duckdb(cfg, run_date, recs)
        where = cfg.paths.warehouse
    log.info("published %d recommendation rows for %s into %s", recs.num_rows, run_date, where)
    return recs.num_rows


def analyst_path(cfg: EncoreConfig) -> Path:
    """The DuckDB file analysts open (read-only): a complete copy of the warehouse after a night."""
    return Path(cfg.paths.warehouse).with_name("analyst.duckdb")


def refresh_analyst_copy(cfg: EncoreConfig) -> dict:
    """DuckDB backend: replace the analysts' copy with the warehouse as the night left it.

    Call it after the night's last write. The warehouse is checkpointed (its WAL folded into
    the file) and copied while this process holds the writer's lock, so nothing changes under
    the copy; the copy is then renamed over ``analyst.duckdb`` in one step. Readers that have
    the old copy open keep reading it; new readers get tonight's. On Postgres there is nothing
    to do: analysts read the warehouse itself.
    """
    if cfg.deploy.warehouse != "duckdb":
        return {"analyst_copy": None, "reason": "postgres: analysts read the warehouse itself"}
    source, target = Path(cfg.paths.warehouse), analyst_path(cfg)
    staging = target.with_name(target.name + ".tmp")
    started = time.monotonic()
    con = duckdb.connect(str(source))
    try:
        con.execute("CHECKPOINT")
        shutil.copyfile(source, staging)
    finally:
        con.close()
    with open(staging, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(staging, target)
    seconds = round(time.monotonic() - started, 3)
    size = target.stat().st_size
    log.info("analyst copy %s refreshed: %.1f MB in %.2f s", target, size / 1e6, seconds)
    return {"analyst_copy": str(target), "bytes": size, "seconds": seconds}
