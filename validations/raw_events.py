"""Raw-event validation (Great Expectations): quarantine bad rows with a reason.

Files are read and conformed to the landing contract by ``encore.ingest.landing``
(a bad file stops the run there). Row-level problems never stop the run and never
vanish: each failing row goes to the quarantine table with every reason it
failed, and ``raw rows = clean + quarantined`` is checked on every run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

import great_expectations as gx
import pandas as pd
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)

from encore.core.config import ConfigError, EncoreConfig
from encore.core.contracts import CLEAN_EVENT, QUARANTINE, arrow_schema, nullable
from validations.gx import run_suite

DEDUP_KEY = ["user_id", "item_id", "ts"]  # GE checks it; dedup_keys() builds it as one string


@dataclass
class RawValidationResult:
    clean: pa.Table
    quarantine: pa.Table
    raw_rows: int
    reasons: dict[str, int]  # rows per reason (a row may count under several)

    @property
    def reconciles(self) -> bool:
        return self.raw_rows == self.clean.num_rows + self.quarantine.num_rows


def _expectations(cfg: EncoreConfig, run_date: dt.date) -> list[tuple[str, object]]:
    labels = cfg.labels
    min_ts = dt.datetime.fromisoformat(labels.min_ts).replace(tzinfo=dt.timezone.utc)
    max_ts = dt.datetime.combine(run_date + dt.timedelta(days=labels.max_future_days + 1), dt.time(), dt.timezone.utc)
    if min_ts >= max_ts:
        raise ConfigError(f"labels.min_ts ({labels.min_ts}) is after the night {run_date}: every event would be "
                          "out of range; set labels.min_ts before the data's first day")
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


def dedup_keys(frame: pd.DataFrame) -> pd.Series:
    """The duplicate key (user_id, item_id, ts) of each row as one string."""
    return frame["user_id"].astype(str) + "|" + frame["item_id"].astype(str) + "|" + frame["ts"].astype(str)


def validate_raw_events(
    table: pa.Table, cfg: EncoreConfig, run_date: str | dt.date, source_file: list[str], source_row: list[int],
    earlier: pa.Table | None = None,
) -> RawValidationResult:
    """Split landing rows into clean events and quarantined rows with reasons.

    Duplicates of (user_id, item_id, ts): among the rows of this date the first valid copy
    is kept (callers order rows by precedence: ``encore.ingest.daily``); a row whose key is
    already among the clean events of an earlier date (``earlier``: columns user_id, item_id,
    ts, source_file, source_row, dt) is quarantined naming that date, file and row.
    """
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
        if not outcome.success and not outcome.failing_rows:
            raise RuntimeError(f"raw event check {outcome.name!r} failed without naming the failing rows")
        for row in outcome.failing_rows:
            reason = str(parse_errors.iloc[row]) if outcome.name == "parse error" else outcome.name
            reasons[row].append(reason)
        if outcome.failing_rows:
            counts[outcome.name] = len(outcome.failing_rows)

    # Among rows that are otherwise valid: a key already ingested on an earlier date is a
    # re-delivery; of the remaining copies of a key the first is kept and later ones rejected.
    keys = dedup_keys(frame) if n else pd.Series([], dtype=str)
    valid = pd.Series([not r for r in reasons], dtype=bool)
    if earlier is not None and earlier.num_rows:
        before = earlier.to_pandas(types_mapper=pd.ArrowDtype)
        seen = dict(zip(dedup_keys(before), zip(before["dt"].astype(str), before["source_file"], before["source_row"])))
        redelivered = valid & keys.isin(seen.keys())
        for row in redelivered[redelivered].index:
            day, file, line = seen[keys.iloc[row]]
            reasons[row].append(f"duplicate event (already ingested on {day} from {file} row {line})")
        if redelivered.any():
            counts["duplicate event (earlier date)"] = int(redelivered.sum())
        valid &= ~redelivered
    dup = keys.loc[valid].duplicated(keep="first")
    first_of = {key: row for row, key in keys.loc[valid].drop_duplicates(keep="first").items()}
    for row in dup[dup].index:
        first = first_of[keys.iloc[row]]
        reasons[row].append(f"duplicate event (same user_id, item_id, ts as {source_file[first]} row {source_row[first]})")
    if dup.any():
        counts["duplicate event"] = int(dup.sum())

    bad = pa.array([bool(r) for r in reasons], pa.bool_())
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
        quarantine=quarantine.cast(nullable(arrow_schema(QUARANTINE))),
        raw_rows=n,
        reasons=counts,
    )
    if not result.reconciles:
        raise AssertionError(f"raw rows {n} != clean {result.clean.num_rows} + quarantined {result.quarantine.num_rows}")
    return result
