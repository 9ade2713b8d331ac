"""Load the Parquet lake tables dbt reads into the Postgres warehouse (schema ``deploy.pg_lake_schema``).

On DuckDB the dbt sources read the lake in place (``read_parquet``). Postgres cannot, and
DuckDB's postgres extension is a download, so before each ``dbt build`` on the ``postgres``
target :func:`sync_lake` copies the lake into ``<schema>.<table>`` (the contract columns plus
the ``dt`` partition): every ``dt=`` partition whose files changed since the last load (new
dates, tonight's date, a re-run) is replaced — delete that ``dt`` and ``COPY`` its rows — and a
partition gone from the lake is deleted; each table in one transaction. A second sync with an
unchanged lake loads nothing, so re-running a date is idempotent.

Columns are nullable on purpose: like ``read_parquet`` on DuckDB, the load passes the data as it
is and dbt's tests decide whether it is good. A column a contract gains is added to its table.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from encore.core import contracts, lake, postgres
from encore.core.config import EncoreConfig

log = logging.getLogger(__name__)

# The lake tables dbt_project/models/staging/_sources.yml declares, with their contracts.
LAKE_TABLES: dict[str, tuple[contracts.Column, ...]] = {
    "events_clean": contracts.CLEAN_EVENT,
    "quarantine": contracts.QUARANTINE,
    "item_catalog": contracts.ITEM_CATALOG,
    "sessionized_events": contracts.SESSIONIZED_EVENT,
    "sequences": contracts.SEQUENCE,
    "phns_pools": contracts.PHNS_POOL,
    "phns_negatives": contracts.PHNS_NEGATIVE,
    "model_runs": contracts.MODEL_RUN,
}
LOADED = "_loaded_partitions"  # (table_name, dt) -> fingerprint of the files loaded


def _partitions(cfg: EncoreConfig, table_name: str) -> dict[str, tuple[str, list[str]]]:
    """Every ``dt=`` folder of a lake table (what DuckDB's ``*/*.parquet`` reads): dt -> (fingerprint, files)."""
    fs, root = lake.filesystem(cfg.lake_path(table_name))
    if fs.get_file_info(root).type == pafs.FileType.NotFound:
        return {}
    found = {}
    for folder in fs.get_file_info(pafs.FileSelector(root)):
        if folder.type != pafs.FileType.Directory or not folder.base_name.startswith("dt="):
            continue
        files = sorted(
            (info for info in fs.get_file_info(pafs.FileSelector(folder.path))
             if info.type == pafs.FileType.File and info.base_name.endswith(".parquet")
             and not info.base_name.startswith((".", "_"))),
            key=lambda info: info.path,
        )
        fingerprint = ";".join(f"{info.base_name}:{info.size}:{info.mtime_ns}" for info in files)
        found[folder.base_name[3:]] = (fingerprint, [info.path for info in files])
    return found


def _read(cfg: EncoreConfig, files: list[str], columns: tuple[contracts.Column, ...], day: str) -> pa.Table:
    """The files as the contract columns (missing ones null, like ``union_by_name``) plus ``dt``."""
    schema = pa.schema([f.with_nullable(True) for f in contracts.arrow_schema(columns)])
    fs, _ = lake.filesystem(cfg.paths.lake)
    parts = []
    for path in files:
        data = pq.read_table(path, filesystem=fs)
        parts.append(pa.table(
            [data.column(f.name).cast(f.type) if f.name in data.column_names else pa.nulls(data.num_rows, f.type)
             for f in schema],
            schema=schema,
        ))
    table = pa.concat_tables(parts) if parts else schema.empty_table()
    return table.append_column("dt", pa.array([dt.date.fromisoformat(day)] * table.num_rows, pa.date32()))


def _ensure_tables(cur, schema: str) -> None:
    cur.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    cur.execute(
        f'CREATE TABLE IF NOT EXISTS "{schema}".{LOADED} (table_name text, dt date, fingerprint text NOT NULL, '
        "rows bigint NOT NULL, loaded_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (table_name, dt))"
    )
    for table_name, columns in LAKE_TABLES.items():
        nullable = tuple(contracts.Column(c.name, c.type, True, c.description) for c in columns)
        cur.execute(
            f'CREATE TABLE IF NOT EXISTS "{schema}"."{table_name}" '
            f'({postgres.column_definitions(nullable)}, "dt" date NOT NULL)'
        )
        for column in nullable:  # a column the contract gained since the table was created
            cur.execute(f'ALTER TABLE "{schema}"."{table_name}" ADD COLUMN IF NOT EXISTS '
                        f'{postgres.column_definitions((column,))}')
        cur.execute(f'CREATE INDEX IF NOT EXISTS "{table_name}_dt" ON "{schema}"."{table_name}" (dt)')


def sync_lake(cfg: EncoreConfig) -> dict[str, int]:
    """Bring the Postgres copy of the lake up to date; returns the rows loaded per table."""
    schema = cfg.deploy.pg_lake_schema
    started = time.monotonic()
    loaded_rows: dict[str, int] = {}
    con = postgres.connect(cfg)
    try:
        with con, con.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('encore.sync_lake'))")
            _ensure_tables(cur, schema)
        for table_name, columns in LAKE_TABLES.items():
            present = _partitions(cfg, table_name)
            with con, con.cursor() as cur:  # one transaction per table
                cur.execute("SELECT pg_advisory_xact_lock(hashtext('encore.sync_lake'))")
                cur.execute(f'SELECT dt::text, fingerprint FROM "{schema}".{LOADED} WHERE table_name = %s', [table_name])
                loaded = dict(cur.fetchall())
                for day in sorted(set(loaded) - set(present)):
                    cur.execute(f'DELETE FROM "{schema}"."{table_name}" WHERE dt = %s', [day])
                    cur.execute(f'DELETE FROM "{schema}".{LOADED} WHERE table_name = %s AND dt = %s', [table_name, day])
                rows = 0
                for day, (fingerprint, files) in sorted(present.items()):
                    if loaded.get(day) == fingerprint:
                        continue
                    data = _read(cfg, files, columns, day)
                    cur.execute(f'DELETE FROM "{schema}"."{table_name}" WHERE dt = %s', [day])
                    rows += postgres.copy_arrow(cur, f'"{schema}"."{table_name}"', data)
                    cur.execute(
                        f'INSERT INTO "{schema}".{LOADED} (table_name, dt, fingerprint, rows) VALUES (%s, %s, %s, %s) '
                        "ON CONFLICT (table_name, dt) DO UPDATE SET fingerprint = excluded.fingerprint, "
                        "rows = excluded.rows, loaded_at = now()",
                        [table_name, day, fingerprint, data.num_rows],
                    )
                loaded_rows[table_name] = rows
    finally:
        con.close()
    log.info("lake -> postgres %s: %s rows loaded in %.1f s", schema, loaded_rows, time.monotonic() - started)
    return loaded_rows
