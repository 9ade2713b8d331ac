"""Raw-event validation: reject bad files loudly, quarantine bad rows with a reason.

A file that cannot be read, lacks a required column, or has a column of the
wrong type stops the run with ``RawFileError`` naming the file and column.
Row-level problems never stop the run and never vanish: each failing row goes
to the quarantine table with every reason it failed, and
``raw rows = clean + quarantined`` is checked on every run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

import great_expectations as gx
import pandas as pd
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from encore.config import EncoreConfig
from encore.contracts import (
    CLEAN_EVENT,
    LANDING_EVENT,
    QUARANTINE,
    REQUIRED_RAW_COLUMNS,
    arrow_schema,
)
from validations.gx import run_suite

DEDUP_KEY = ["user_id", "item_id", "ts"]


class RawFileError(ValueError):
    """A landing file is unreadable or breaks the raw contract (names file and column)."""


@dataclass
class RawValidationResult:
    clean: pa.Table
    quarantine: pa.Table
    raw_rows: int
    reasons: dict[str, int]  # rows per reason (a row may count under several)

    @property
    def reconciles(self) -> bool:
        return self.raw_rows == self.clean.num_rows + self.quarantine.num_rows


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
    schema = _nullable(arrow_schema(LANDING_EVENT))
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


def _nullable(schema: pa.Schema) -> pa.Schema:
    return pa.schema([pa.field(f.name, f.type, nullable=True) for f in schema])


def _expectations(cfg: EncoreConfig, run_date: dt.date) -> list[tuple[str, object]]:
    labels = cfg.labels
    min_ts = dt.datetime.fromisoformat(labels.min_ts).replace(tzinfo=dt.timezone.utc)
    max_ts = dt.datetime.combine(run_date + dt.timedelta(days=labels.max_future_days + 1), dt.time(), dt.timezone.utc)
    E = gx.expectations
    return [
        ("parse error", E.ExpectColumnValuesToBeNull(column="parse_error")),
        ("null user_id", E.ExpectColumnValuesToNotBeNull(column="user_id")),
        ("empty user_id", E.ExpectColumnValueLengthsToBeBetween(column="user_id", min_value=1)),
        ("null item_id", E.ExpectColumnValuesToNotBeNull(column="item_id")),
        ("empty item_id", E.ExpectColumnValueLengthsToBeBetween(column="item_id", min_value=1)),
        ("null ts", E.ExpectColumnValuesToNotBeNull(column="ts")),
        (
            f"ts out of range [{min_ts.date()}, {max_ts.date()})",
            E.ExpectColumnValuesToBeBetween(column="ts", min_value=min_ts, max_value=max_ts, strict_max=True),
        ),
        ("completion not in [0,1]", E.ExpectColumnValuesToBeBetween(column="completion", min_value=0, max_value=1)),
        ("skip_level not in 0..3", E.ExpectColumnValuesToBeInSet(column="skip_level", value_set=[0, 1, 2, 3])),
        ("negative duration_ms", E.ExpectColumnValuesToBeBetween(column="duration_ms", min_value=0)),
        ("non-positive item_length_ms", E.ExpectColumnValuesToBeBetween(column="item_length_ms", min_value=1)),
        ("rating not in [0,10]", E.ExpectColumnValuesToBeBetween(column="rating", min_value=0, max_value=10)),
        ("null source", E.ExpectColumnValuesToNotBeNull(column="source")),
        ("duplicate event", E.ExpectCompoundColumnsToBeUnique(column_list=DEDUP_KEY)),
    ]


def event_ids(frame: pd.DataFrame) -> list[str]:
    keys = (
        frame["user_id"].astype(str) + "|" + frame["item_id"].astype(str) + "|"
        + frame["ts"].astype(str) + "|" + frame["source"].astype(str)
    )
    return [hashlib.blake2b(k.encode(), digest_size=8).hexdigest() for k in keys]


def validate_raw_events(
    table: pa.Table, cfg: EncoreConfig, run_date: str | dt.date, source_file: list[str], source_row: list[int]
) -> RawValidationResult:
    """Split landing rows into clean events and quarantined rows with reasons."""
    run_date = dt.date.fromisoformat(str(run_date))
    frame = table.to_pandas(types_mapper=pd.ArrowDtype).reset_index(drop=True)
    n = len(frame)
    reasons: list[list[str]] = [[] for _ in range(n)]
    counts: dict[str, int] = {}
    outcomes = run_suite(frame, "raw_events", _expectations(cfg, run_date))
    parse_errors = frame["parse_error"]
    for outcome in outcomes:
        if outcome.name == "duplicate event":
            continue  # GE flags every copy; the first copy is kept below
        for row in outcome.failing_rows:
            reason = str(parse_errors.iloc[row]) if outcome.name == "parse error" else outcome.name
            reasons[row].append(reason)
        if outcome.failing_rows:
            counts[outcome.name] = len(outcome.failing_rows)

    # Among rows that are otherwise valid, the first copy of a key is kept and later copies rejected.
    valid = pd.Series([not r for r in reasons])
    dup = frame[DEDUP_KEY].astype(str).loc[valid].duplicated(keep="first")
    first_row = frame[DEDUP_KEY].astype(str).loc[valid].drop_duplicates(keep="first")
    first_of = {tuple(v): i for i, v in zip(first_row.index, first_row.itertuples(index=False))}
    for row in dup[dup].index:
        key = tuple(frame[DEDUP_KEY].astype(str).iloc[row])
        reasons[row].append(f"duplicate event (same user_id, item_id, ts as {source_file[first_of[key]]} row {source_row[first_of[key]]})")
    if dup.any():
        counts["duplicate event"] = int(dup.sum())

    bad = pa.array([bool(r) for r in reasons])
    good = pa.compute.invert(bad)
    with_provenance = (
        table.append_column("event_id", pa.array(event_ids(frame), pa.string()))
        .append_column("source_file", pa.array(source_file, pa.string()))
        .append_column("source_row", pa.array(source_row, pa.int64()))
    )
    clean = with_provenance.filter(good).drop_columns(["parse_error"])
    quarantine = with_provenance.filter(bad).drop_columns(["parse_error"])
    quarantine = quarantine.append_column("reason", pa.array(["; ".join(r) for r in reasons if r], pa.string()))
    result = RawValidationResult(
        clean=clean.cast(arrow_schema(CLEAN_EVENT)),
        quarantine=quarantine.cast(_nullable(arrow_schema(QUARANTINE))),
        raw_rows=n,
        reasons=counts,
    )
    if not result.reconciles:
        raise AssertionError(f"raw rows {n} != clean {result.clean.num_rows} + quarantined {result.quarantine.num_rows}")
    return result
