"""The Postgres warehouse of deployed mode: connecting, contract column types, COPY of Arrow tables.

The server is the one ``encore.deploy`` runs (``cfg.deploy``: host, port, role, database). The
password is never part of the config: env ``ENCORE_PG_PASSWORD`` when set, else libpq finds it
in the password file named by ``PGPASSFILE`` (``deploy up`` writes one under the state dir).
"""

from __future__ import annotations

import io
import math
import os

import psycopg2
import psycopg2.extensions
import pyarrow as pa
import pyarrow.csv as pacsv

from encore.core.config import EncoreConfig
from encore.core.contracts import Column

PASSWORD_ENV = "ENCORE_PG_PASSWORD"
_TYPES = {
    "string": "text",
    "timestamp": "timestamptz",
    "int64": "bigint",
    "int32": "integer",
    "double": "double precision",
    "bool": "boolean",
    "date": "date",
}


class WarehouseUnavailable(RuntimeError):
    """The Postgres warehouse cannot be reached or refused the login."""


def connect(cfg: EncoreConfig, database: str | None = None, user: str | None = None) -> psycopg2.extensions.connection:
    """A connection to ``database`` (default: the warehouse) as ``user`` (default: the pipeline's role)."""
    params = {
        "host": cfg.deploy.host,
        "port": cfg.deploy.pg_port,
        "user": user or cfg.deploy.pg_user,
        "dbname": database or cfg.deploy.pg_database,
        "application_name": "encore",
        "connect_timeout": 10,
    }
    if os.environ.get(PASSWORD_ENV) and params["user"] == cfg.deploy.pg_user:
        params["password"] = os.environ[PASSWORD_ENV]
    try:
        return psycopg2.connect(**params)
    except psycopg2.OperationalError as exc:
        where = f"{params['user']}@{params['host']}:{params['port']}/{params['dbname']}"
        raise WarehouseUnavailable(
            f"cannot connect to the Postgres warehouse {where}: {str(exc).strip()} "
            f"(is it running? `make deploy-status`; password from {PASSWORD_ENV} or PGPASSFILE)"
        ) from exc


def column_type(column: Column) -> str:
    """The Postgres type of a contract column (``list<x>`` becomes an array of x)."""
    if column.type.startswith("list<"):
        return f"{column_type(Column(column.name, column.type[5:-1], True, ''))}[]"
    return _TYPES[column.type]


def column_definitions(columns: tuple[Column, ...]) -> str:
    return ", ".join(f'"{c.name}" {column_type(c)}{"" if c.nullable else " NOT NULL"}' for c in columns)


def _array_element(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _array_literal(values: list | None) -> str | None:
    """A Python list as Postgres array input text, e.g. ``{"a","b"}``."""
    if values is None:
        return None
    return "{" + ",".join(_array_element(v) for v in values) + "}"


def copy_arrow(cursor, table_name: str, data: pa.Table, batch_rows: int = 100_000) -> int:
    """``COPY table_name FROM STDIN`` the rows of ``data`` (columns by name) in CSV batches.

    Scalar columns go through pyarrow's CSV writer (a null is an empty field, an empty string
    a quoted one, as Postgres' CSV format reads them); list columns become array literals.
    """
    columns = ", ".join(f'"{name}"' for name in data.column_names)
    statement = f"COPY {table_name} ({columns}) FROM STDIN WITH (FORMAT csv)"
    for batch in data.to_batches(max_chunksize=batch_rows):
        arrays = [
            pa.array([_array_literal(v) for v in array.to_pylist()], pa.string())
            if pa.types.is_list(array.type) or pa.types.is_large_list(array.type) else array
            for array in batch.columns
        ]
        buffer = io.BytesIO()
        pacsv.write_csv(pa.table(arrays, names=data.column_names), buffer, pacsv.WriteOptions(include_header=False))
        buffer.seek(0)
        cursor.copy_expert(statement, buffer)
    return data.num_rows
