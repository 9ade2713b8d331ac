"""Single-node DuckDB implementation of sessionize + label, sequences and PHNS pools.

The same rules as the Spark jobs (labels from ``contracts.label_sql``, the same window
order and tie-breaks), used as a correctness cross-check against Spark, as the
single-node baseline of the benchmark, and by training experiments that need
sequences from any raw-event table without Spark (``build_sequences_duckdb``).
PHNS negative *samples* are Spark-only (their hash order is Spark's xxhash64).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path

import duckdb
import pyarrow as pa

from encore.core.config import EncoreConfig
from encore.core.contracts import CLEAN_EVENT, PHNS_POOL, SEQUENCE, SESSIONIZED_EVENT, completion_sql, label_sql
from spark_jobs.lake import lookback_window
from spark_jobs.sequences import MIN_POSITIVES, sequence_length

log = logging.getLogger(__name__)

USER_WINDOW = "PARTITION BY user_id ORDER BY session_id ASC NULLS FIRST, ts, event_id"
# Raw events (e.g. a public dataset) have no event_id: derive a stable tie-break key.
DERIVED_EVENT_ID = "md5(concat_ws('|', user_id, item_id, CAST(epoch_us(ts) AS VARCHAR), source))"


def connect(threads: int | None = None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    return con


def _events_view(con: duckdb.DuckDBPyConnection, events: pa.Table | str, window: tuple[dt.date, dt.date] | None) -> None:
    """View ``events``: an Arrow table or a Parquet glob, missing optional columns as NULL."""
    con.execute("DROP VIEW IF EXISTS events")
    if isinstance(events, pa.Table):
        con.register("events_input", events)
        source, names = "events_input", set(events.column_names)
    else:
        source = f"read_parquet('{events}', hive_partitioning = true)"
        names = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    missing = [c for c in ("user_id", "item_id", "ts") if c not in names]
    if missing:
        raise ValueError(f"events: missing required columns {missing}")
    types = {"string": "VARCHAR", "int64": "BIGINT", "int32": "INTEGER", "double": "DOUBLE"}
    columns = []
    for col in CLEAN_EVENT[:13]:
        if col.name in names:
            columns.append(col.name if col.name != "ts" else "CAST(ts AS TIMESTAMPTZ) AS ts")
        elif col.name == "event_id":
            columns.append(f"{DERIVED_EVENT_ID} AS event_id")
        elif col.name == "source":
            columns.append("'unknown' AS source")
        elif col.name not in ("source_file", "source_row"):
            columns.append(f"CAST(NULL AS {types[col.type]}) AS {col.name}")
    where = ""
    if window:
        where = f"WHERE CAST(ts AS DATE) BETWEEN DATE '{window[0]}' AND DATE '{window[1]}'"
        if "dt" in names:
            where += f" AND CAST(dt AS DATE) BETWEEN DATE '{window[0]}' AND DATE '{window[1]}'"
    inner = f"SELECT * REPLACE (CAST(ts AS TIMESTAMPTZ) AS ts) FROM {source}"
    con.execute(f"CREATE VIEW events AS SELECT {', '.join(columns)} FROM ({inner}) {where}")


def sessionized_sql(cfg: EncoreConfig) -> str:
    labels = label_sql(cfg.labels)
    gap_us = cfg.sessions.gap_minutes * 60 * 1_000_000
    running = f"({USER_WINDOW} ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"
    return f"""
    WITH filled AS (
        SELECT user_id, item_id, ts, event_id, session_id, skip_level, rating, source,
               {completion_sql()} AS completion
        FROM events),
    labelled AS (
        SELECT *, {labels['is_skip']} AS is_skip, {labels['is_abandoned']} AS is_abandoned,
               {labels['engagement']} AS engagement
        FROM filled),
    breaks AS (
        SELECT *, row_number() OVER w AS user_rn,
               CASE WHEN session_id IS NOT NULL THEN coalesce(lag(session_id) OVER w <> session_id, TRUE)
                    ELSE coalesce(epoch_us(ts) - epoch_us(lag(ts) OVER w) > {gap_us}, TRUE) END AS is_session_start
        FROM labelled WINDOW w AS ({USER_WINDOW})),
    sessions AS (
        SELECT *, sum(CAST(is_session_start AS INTEGER)) OVER {running} AS session_no,
               last_value(CASE WHEN is_session_start THEN user_rn END IGNORE NULLS) OVER {running} AS start_rn,
               last_value(CASE WHEN is_session_start THEN ts END IGNORE NULLS) OVER {running} AS session_start
        FROM breaks),
    targets AS (
        SELECT *, lead(CASE WHEN NOT is_skip THEN item_id END IGNORE NULLS) OVER w AS next_pos_item,
               lead(CASE WHEN NOT is_skip THEN session_no END IGNORE NULLS) OVER w AS next_pos_session
        FROM sessions WINDOW w AS ({USER_WINDOW}))
    SELECT user_id, item_id, ts, event_id,
           coalesce(session_id, user_id || '#' || CAST(epoch_us(session_start) // 1000000 AS VARCHAR)) AS session_id,
           CAST(user_rn - start_rn AS INTEGER) AS position, completion, skip_level, rating,
           is_skip, is_abandoned, engagement,
           CASE WHEN next_pos_session = session_no THEN next_pos_item END AS next_positive_item_id, source
    FROM targets"""


def sequences_sql(cfg: EncoreConfig) -> str:
    keep = sequence_length(cfg)
    return f"""
    WITH per_user AS (
        SELECT user_id, count(*) AS n_events,
               list(struct_pack(ts := ts, item_id := item_id, is_skip := is_skip, engagement := engagement)
                    ORDER BY ts, event_id) AS events
        FROM sessionized GROUP BY user_id),
    truncated AS (
        SELECT user_id, n_events, list_slice(events, greatest(len(events) - {keep} + 1, 1), len(events)) AS events,
               list_sort(list_distinct(list_transform(list_slice(events, 1, greatest(len(events) - {keep}, 0)), lambda e: e.item_id)))
                   AS earlier_item_ids
        FROM per_user),
    indexed AS (
        SELECT *, list_filter(list_transform(events, lambda e, i: CASE WHEN NOT e.is_skip THEN i - 1 END),
                              lambda i: i IS NOT NULL) AS positive_idx
        FROM truncated)
    SELECT user_id,
           list_transform(events, lambda e: e.item_id) AS item_ids,
           list_transform(events, lambda e: e.is_skip) AS is_skip,
           list_transform(events, lambda e: e.engagement) AS completion,
           list_transform(events, lambda e: e.ts) AS ts,
           CAST(positive_idx[-2] AS INTEGER) AS valid_idx,
           CAST(positive_idx[-1] AS INTEGER) AS test_idx,
           earlier_item_ids, n_events, len(positive_idx) AS n_positives
    FROM indexed"""


def pools_sql(cfg: EncoreConfig, run_date: dt.date) -> str:
    size = cfg.phns.pool_size
    trending_start = run_date - dt.timedelta(days=cfg.phns.trending_window_days - 1)
    return f"""
    WITH user_items AS (
        SELECT user_id, item_id, bool_or(NOT is_skip AND NOT is_abandoned) AS consumed_positive,
               bool_or(is_skip OR is_abandoned) AS negative_feedback,
               min(engagement) AS min_engagement, max(ts) AS last_ts
        FROM sessionized GROUP BY user_id, item_id),
    support AS (
        SELECT item_id, count(*) AS users,
               sum(CASE WHEN CAST(last_ts AS DATE) >= DATE '{trending_start}' THEN 1 ELSE 0 END) AS recent_users
        FROM user_items GROUP BY item_id),
    trending AS (
        SELECT 'trending' AS pool, item_id, row_number() OVER (ORDER BY recent_users DESC, item_id) AS global_rank
        FROM support WHERE recent_users > 0 ORDER BY recent_users DESC, item_id LIMIT {size}),
    tailing AS (
        SELECT 'tailing' AS pool, item_id, row_number() OVER (ORDER BY users, item_id) AS global_rank
        FROM support
        WHERE users >= {cfg.phns.tailing_min_support} AND item_id NOT IN (SELECT item_id FROM trending)
        ORDER BY users, item_id LIMIT {size}),
    hard AS (
        SELECT user_id, 'hard' AS pool, item_id,
               CAST(row_number() OVER (PARTITION BY user_id ORDER BY min_engagement, last_ts DESC, item_id) AS INTEGER)
                   AS pool_rank
        FROM user_items WHERE negative_feedback AND NOT consumed_positive
        QUALIFY pool_rank <= {size}),
    not_seen AS (
        SELECT u.user_id, g.pool, g.item_id,
               CAST(row_number() OVER (PARTITION BY u.user_id, g.pool ORDER BY g.global_rank) AS INTEGER) AS pool_rank
        FROM (SELECT DISTINCT user_id FROM user_items) u
        CROSS JOIN (SELECT * FROM trending UNION ALL SELECT * FROM tailing) g
        ANTI JOIN user_items ui ON ui.user_id = u.user_id AND ui.item_id = g.item_id)
    SELECT * FROM hard UNION ALL SELECT * FROM not_seen"""


def _columns(contract) -> str:
    return ", ".join(c.name for c in contract)


def build_sessionized_duckdb(events: pa.Table, cfg: EncoreConfig, run_date: str | dt.date | None = None) -> pa.Table:
    """SESSIONIZED_EVENT rows for every event (of the lookback window of ``run_date`` if given)."""
    con = connect()
    _events_view(con, events, lookback_window(cfg, run_date) if run_date else None)
    return con.sql(f"SELECT {_columns(SESSIONIZED_EVENT)} FROM ({sessionized_sql(cfg)}) ORDER BY user_id, ts, event_id").to_arrow_table()


def build_sequences_duckdb(events: pa.Table, cfg: EncoreConfig, run_date: str | dt.date | None = None) -> pa.Table:
    """SEQUENCE rows (users with at least MIN_POSITIVES positives) from any raw or clean event table.

    ``events`` needs user_id, item_id, ts; every other raw-event column is optional.
    """
    con = connect()
    _events_view(con, events, lookback_window(cfg, run_date) if run_date else None)
    con.execute(f"CREATE TEMP TABLE sessionized AS {sessionized_sql(cfg)}")
    return con.sql(
        f"SELECT {_columns(SEQUENCE)} FROM ({sequences_sql(cfg)}) WHERE n_positives >= {MIN_POSITIVES} ORDER BY user_id"
    ).to_arrow_table()


def build_phns_pools_duckdb(events: pa.Table, cfg: EncoreConfig, run_date: str | dt.date) -> pa.Table:
    """PHNS_POOL rows as of ``run_date`` (over its lookback window)."""
    window = lookback_window(cfg, run_date)
    con = connect()
    _events_view(con, events, window)
    con.execute(f"CREATE TEMP TABLE sessionized AS {sessionized_sql(cfg)}")
    return con.sql(f"SELECT {_columns(PHNS_POOL)} FROM ({pools_sql(cfg, window[1])}) ORDER BY ALL").to_arrow_table()


def run_reference(cfg: EncoreConfig, run_date: str | dt.date, out_dir: str, threads: int | None = None) -> dict:
    """The nightly Spark work on one node: clean events from the lake -> Parquet under ``out_dir``."""
    start, day = lookback_window(cfg, run_date)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    con = connect(threads)
    timings: dict[str, float] = {}

    def timed(step: str, sql: str) -> None:
        began = time.monotonic()
        con.execute(sql)
        timings[step] = round(time.monotonic() - began, 2)
        log.info("duckdb %s: %.2fs", step, timings[step])

    _events_view(con, f"{cfg.lake_path('events_clean')}/dt=*/*.parquet", (start, day))
    timed("sessionize", f"CREATE TEMP TABLE sessionized AS {sessionized_sql(cfg)}")
    timed(
        "write_sessionized",
        f"COPY (SELECT {_columns(SESSIONIZED_EVENT)} FROM sessionized WHERE CAST(ts AS DATE) = DATE '{day}') "
        f"TO '{out / 'sessionized_events.parquet'}' (FORMAT parquet)",
    )
    timed(
        "sequences",
        f"COPY (SELECT {_columns(SEQUENCE)} FROM ({sequences_sql(cfg)}) WHERE n_positives >= {MIN_POSITIVES}) "
        f"TO '{out / 'sequences.parquet'}' (FORMAT parquet)",
    )
    timed("phns_pools", f"COPY ({pools_sql(cfg, day)}) TO '{out / 'phns_pools.parquet'}' (FORMAT parquet)")
    counts = {
        name: con.execute(f"SELECT count(*) FROM read_parquet('{out / name}.parquet')").fetchone()[0]
        for name in ("sessionized_events", "sequences", "phns_pools")
    }
    return {"run_date": day.isoformat(), "rows": counts, "stage_seconds": timings}
