"""Landing files: which files a night reads, and reading one into the landing contract.

A file that cannot be read, lacks a required column, or has a column of the
wrong type stops the run with ``RawFileError`` naming the file and column.
Values that do not parse become null with a ``parse_error`` naming the column and
the raw value, so validation quarantines the row instead of failing the file.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from encore.core.config import EncoreConfig
from encore.core.contracts import LANDING_EVENT, REQUIRED_RAW_COLUMNS, arrow_schema, nullable
from encore.core.errors import RawFileError


def landed_sources(cfg: EncoreConfig) -> list[str]:
    """Sources with a folder in the landing zone, sorted."""
    root = Path(cfg.paths.landing)
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []


def night_sources(cfg: EncoreConfig) -> list[str]:
    """The sources a night reads: ``ingest.sources``, or every landed source when it is empty."""
    return list(cfg.ingest.sources) or landed_sources(cfg)


def landed_dates(cfg: EncoreConfig) -> list[str]:
    """Every date with a landing partition of a source the night reads, sorted."""
    root = Path(cfg.paths.landing)
    return sorted({p.name[3:] for source in night_sources(cfg) for p in (root / source).glob("dt=*") if p.is_dir()})


def last_landed_dates(cfg: EncoreConfig, n: int = 3) -> list[str]:
    """The data's own last ``n`` landed days: what ``encore run`` processes by default."""
    return landed_dates(cfg)[-n:]


def landing_files(cfg: EncoreConfig, run_date: str) -> list[Path]:
    """Every delivered file for the date of the night's sources (``landing/<source>/dt=D/*``;
    hidden files, e.g. an adapter's temporary file, are not deliveries)."""
    files = []
    for source in night_sources(cfg):
        folder = Path(cfg.landing_path(run_date, source))
        files += sorted(folder.glob("*.parquet")) + sorted(folder.glob("*.csv"))
    return files


def read_landing_file(path: str | Path) -> pa.Table:
    """Read one landing file (Parquet or CSV) and conform it to the landing contract.

    CSV values that do not parse become null with a ``parse_error`` naming the
    column and the raw value, so the row is quarantined rather than the file failed.
    """
    path = str(path)
    try:
        if path.endswith(".parquet"):
            table = pq.read_table(path)
        elif path.endswith(".csv"):
            table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(strings_can_be_null=True, column_types={
                c.name: pa.string() for c in LANDING_EVENT}))
        else:
            raise RawFileError(f"{path}: unsupported file type (expected .parquet or .csv)")
    except (pa.ArrowInvalid, OSError) as exc:
        raise RawFileError(f"{path}: unreadable: {exc}") from exc
    missing = [c for c in REQUIRED_RAW_COLUMNS if c not in table.column_names]
    if missing:
        raise RawFileError(f"{path}: missing required column {missing[0]!r} (has {table.column_names})")
    schema = nullable(arrow_schema(LANDING_EVENT))
    columns, errors = [], pd.Series([None] * table.num_rows, dtype="object")
    for field in schema:
        if field.name not in table.column_names:
            columns.append(pa.nulls(table.num_rows, field.type))
            continue
        column = table[field.name]
        try:
            columns.append(column.cast(field.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            if not pa.types.is_string(column.type):
                raise RawFileError(
                    f"{path}: column {field.name!r} has type {column.type}, expected {field.type}: {exc}"
                ) from exc
            parsed, failed = _parse_strings(column.to_pandas(), field.type)
            columns.append(pa.array(parsed, type=field.type, from_pandas=True))
            raw_values = column.to_pandas()
            for row in failed[failed].index:
                message = f"{field.name}: unparseable {raw_values[row]!r}"
                errors[row] = message if errors[row] is None else f"{errors[row]}; {message}"
    if "parse_error" in table.column_names:  # adapters already recorded theirs
        errors = errors.where(errors.notna(), table["parse_error"].to_pandas())
    columns[schema.names.index("parse_error")] = pa.array(errors.tolist(), pa.string())
    return pa.Table.from_arrays(columns, schema=schema)


def _parse_strings(values: pd.Series, arrow_type: pa.DataType) -> tuple[pd.Series, pd.Series]:
    """Parse strings leniently; return the parsed values and which non-null inputs failed."""
    if pa.types.is_timestamp(arrow_type):
        parsed = pd.to_datetime(values, errors="coerce", utc=True, format="ISO8601")
    else:
        parsed = pd.to_numeric(values, errors="coerce")
        if pa.types.is_integer(arrow_type):
            parsed = parsed.where(parsed.isna() | (parsed == parsed.round()))
            parsed = parsed.astype("Int64")
    return parsed, values.notna() & parsed.isna()
