"""DuckDB reference (no Spark): sequences from a bare raw-event table, truncation, exclusions."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from encore.core.config import load_config
from benchmarks.duckdb_reference import build_sequences_duckdb, build_sessionized_duckdb


def raw_events(rows: list[tuple[str, str, str, float]]) -> pa.Table:
    """Only the required columns plus completion: event_id, session_id etc. are absent."""
    return pa.table({
        "user_id": [r[0] for r in rows],
        "item_id": [r[1] for r in rows],
        "ts": pa.array([dt.datetime.fromisoformat(r[2]).replace(tzinfo=dt.timezone.utc) for r in rows],
                       pa.timestamp("us", tz="UTC")),
        "completion": [r[3] for r in rows],
    })


def test_sequences_from_raw_events_without_spark():
    # keep the last 3 events: sequence_events 0 means at least one window, max_seq_len + 1
    cfg = load_config(environ={}, training={"max_seq_len": 2}, sessions={"sequence_events": 0})
    table = raw_events([
        ("u1", "d", "2026-10-05T10:03:00", 1.0),  # out of order on purpose
        ("u1", "a", "2026-10-05T10:00:00", 1.0),
        ("u1", "b", "2026-10-05T10:01:00", 0.9),
        ("u1", "c", "2026-10-05T10:02:00", 0.8),
        ("u2", "a", "2026-10-05T10:00:00", 1.0),
        ("u2", "b", "2026-10-05T10:01:00", 0.1),  # skipped: u2 has only 2 positives
        ("u2", "c", "2026-10-05T10:02:00", 1.0),
    ])
    sequences = build_sequences_duckdb(table, cfg).to_pylist()
    assert [(r["user_id"], r["item_ids"], r["valid_idx"], r["test_idx"], r["n_events"]) for r in sequences] == [
        ("u1", ["b", "c", "d"], 1, 2, 4)]


def test_sessionized_targets_skip_over_skipped_items():
    cfg = load_config(environ={})
    table = raw_events([
        ("u1", "a", "2026-10-05T10:00:00", 1.0),
        ("u1", "b", "2026-10-05T10:01:00", 0.1),
        ("u1", "c", "2026-10-05T10:02:00", 0.2),
        ("u1", "d", "2026-10-05T10:32:00", 1.0),  # exactly 30 min after c: same session
        ("u1", "e", "2026-10-05T11:02:01", 1.0),  # 30 min 1 s after d: new session
    ])
    rows = build_sessionized_duckdb(table, cfg).to_pylist()
    assert [(r["item_id"], r["position"], r["next_positive_item_id"]) for r in rows] == [
        ("a", 0, "d"), ("b", 1, "d"), ("c", 2, "d"), ("d", 3, None), ("e", 0, None)]
    assert rows[-1]["session_id"] == f"u1#{int(dt.datetime(2026, 10, 5, 11, 2, 1, tzinfo=dt.timezone.utc).timestamp())}"


def test_bench_ratios_compare_the_work_both_engines_do():
    from benchmarks.spark_bench import ratios

    results = [
        {"engine": "duckdb", "events": 1000, "job_seconds": 10.0, "stage_seconds": {"sessionize": 6.0},
         "rows": {"sessionized_events": 40, "sequences": 7, "phns_pools": 90}},
        {"engine": "spark", "events": 1000, "job_seconds": 30.0,
         "stage_seconds": {"sessionize": 20.0, "phns_negatives": 5.0}, "rows": {"sequences": 7, "phns_pools": 90}},
        {"engine": "duckdb", "events": 5, "job_seconds": 1.0, "stage_seconds": {}, "rows": {}},  # no Spark twin
    ]
    assert ratios(results) == [{
        "events": 1000, "duckdb_seconds": 10.0, "spark_seconds": 30.0, "spark_same_work_seconds": 25.0,
        "spark_over_duckdb": 3.0, "spark_over_duckdb_same_work": 2.5, "rows_agree": True,
    }]
    results[1]["rows"]["phns_pools"] = 89
    assert ratios(results)[0]["rows_agree"] is False
    # --repeats: warm runs compared on the same work too
    results[0]["warm"] = {"job_seconds": 8.0, "stage_seconds": {"sessionize": 5.0}}
    results[1]["warm"] = {"job_seconds": 22.0, "stage_seconds": {"sessionize": 15.0, "phns_negatives": 4.0}}
    warm = ratios(results)[0]
    assert (warm["duckdb_warm_seconds"], warm["spark_warm_same_work_seconds"], warm["spark_over_duckdb_warm_same_work"]) == (
        8.0, 18.0, 2.25)
