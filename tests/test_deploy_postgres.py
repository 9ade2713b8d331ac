"""Deployed mode's Postgres pieces against a throw-away server (tests/postgres_server.py).

The publish is one transaction and analysts reading during it only ever see complete dates;
the lake loads into Postgres partition by partition, idempotently; the dbt project builds the
same marts with the same tests on Postgres as on DuckDB; the server and the service processes
start idempotently and stop by their PID.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import duckdb
import psycopg2
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from postgres_server import ROLE, pg_cfg, pg_server  # noqa: F401  (fixtures)
from test_dbt import D, D_PLUS_1, INCREMENTAL_MARTS, _csv, create_recommendations_table, write_fixture_lake
from test_warehouse import _recs

from encore.core import contracts, postgres, warehouse
from encore.core.config import load_config
from encore.core.warehouse import PublishError, publish_recommendations, query
from encore.deploy import processes
from encore.deploy.pg_server import PostgresError, PostgresServer, free_port
from encore.features.dbt_runner import ANALYST, FEATURES, dbt_build
from encore.features.lake_to_postgres import sync_lake


def _pg_rows(cfg, sql: str, params=()) -> list[tuple]:
    con = postgres.connect(cfg)
    try:
        with con.cursor() as cur:
            cur.execute(sql, list(params))
            return cur.fetchall()
    finally:
        con.close()


# --------------------------------------------------------------------------- publish


def test_publish_replaces_a_date_and_latest_is_a_view(pg_cfg):
    publish_recommendations(pg_cfg, "2026-10-05", _recs("2026-10-05", model_version="1"))
    publish_recommendations(pg_cfg, "2026-10-06", _recs("2026-10-06"))
    publish_recommendations(pg_cfg, "2026-10-05", _recs("2026-10-05", users=("u1",), model_version="2"))
    assert _pg_rows(pg_cfg, "SELECT run_date::text, count(*), max(model_version) FROM recommendations "
                            "GROUP BY 1 ORDER BY 1") == [("2026-10-05", 3, "2"), ("2026-10-06", 6, "1")]
    assert _pg_rows(pg_cfg, "SELECT table_type FROM information_schema.tables WHERE table_name = 'recommendations_latest'") \
        == [("VIEW",)]
    latest = query(pg_cfg, "SELECT DISTINCT run_date FROM recommendations_latest")
    assert latest.column("run_date").to_pylist() == [dt.date(2026, 10, 6)]
    # the backend-neutral read: ? parameters, an Arrow table
    assert query(pg_cfg, "SELECT count(*) AS n FROM recommendations WHERE run_date = ? AND rank <= ?",
                 ["2026-10-06", 2]).column("n").to_pylist() == [4]


def test_failure_inside_the_transaction_keeps_previous_rows(pg_cfg, monkeypatch):
    publish_recommendations(pg_cfg, "2026-10-05", _recs("2026-10-05", model_version="1"))

    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    verify = warehouse._verify_in_transaction
    monkeypatch.setattr(warehouse, "_verify_in_transaction", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        publish_recommendations(pg_cfg, "2026-10-05", _recs("2026-10-05", users=("u9",), model_version="2"))
    assert _pg_rows(pg_cfg, "SELECT user_id, count(*), max(model_version) FROM recommendations GROUP BY 1 ORDER BY 1") \
        == [("u1", 3, "1"), ("u2", 3, "1")]
    monkeypatch.setattr(warehouse, "_verify_in_transaction", verify)
    with pytest.raises(PublishError, match="other run dates"):
        publish_recommendations(pg_cfg, "2026-10-05", _recs("2026-10-06"))
    dup = pa.concat_tables([_recs("2026-10-05", users=("u7",)), _recs("2026-10-05", users=("u7",))])
    with pytest.raises(psycopg2.errors.UniqueViolation):
        publish_recommendations(pg_cfg, "2026-10-05", dup)
    assert _pg_rows(pg_cfg, "SELECT count(*) FROM recommendations") == [(6,)]


def test_analysts_reading_during_publishes_only_see_complete_dates(pg_cfg, pg_server):
    """One analyst connection reads counts per date in a tight loop while the night replaces
    dates again and again; another holds a transaction open across all the publishes."""
    users = tuple(f"u{i:03d}" for i in range(200))
    k = 5
    full = k * len(users)
    publish_recommendations(pg_cfg, "2026-10-05", _recs("2026-10-05", users=users, k=k))
    seen, errors, done = [], [], threading.Event()

    def analyst():
        con = postgres.connect(pg_cfg)
        con.set_session(readonly=True, autocommit=True)
        try:
            with con.cursor() as cur:
                while not done.is_set():
                    try:
                        cur.execute("SELECT run_date::text, count(*) FROM recommendations GROUP BY run_date")
                        seen.append(dict(cur.fetchall()))
                    except psycopg2.Error as exc:
                        errors.append(exc)
        finally:
            con.close()

    reader = threading.Thread(target=analyst)
    holder = postgres.connect(pg_cfg)  # an analyst in the middle of a long transaction
    holder.set_session(isolation_level="REPEATABLE READ", readonly=True)
    with holder.cursor() as cur:
        cur.execute("SELECT count(*) FROM recommendations_latest")
        assert cur.fetchone() == (full,)
    reader.start()
    try:
        for night in range(12):  # new dates and re-runs of old ones, with other models
            day = f"2026-10-{6 + night % 3:02d}"
            started = time.monotonic()
            publish_recommendations(pg_cfg, day, _recs(day, users=users, k=k, model_version=str(night)))
            assert time.monotonic() - started < 30  # never waits for the analysts
    finally:
        done.set()
        reader.join(timeout=30)
    with holder.cursor() as cur:  # its snapshot still shows the one date it started with
        cur.execute("SELECT run_date::text, count(*) FROM recommendations GROUP BY 1")
        assert cur.fetchall() == [("2026-10-05", full)]
    holder.close()
    assert not errors
    assert len(seen) > 12
    assert all(count == full for snapshot in seen for count in snapshot.values()), \
        [s for s in seen if set(s.values()) != {full}][:3]
    assert {day for snapshot in seen for day in snapshot} == {"2026-10-05", "2026-10-06", "2026-10-07", "2026-10-08"}


# --------------------------------------------------------------------------- lake -> postgres


def _lake_partition(cfg, table: str, day: str, rows: list[dict], columns) -> None:
    folder = Path(cfg.lake_path(table, day))
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=contracts.arrow_schema(columns)), folder / "part-0.parquet")


def test_lake_sync_loads_changed_partitions_only(pg_cfg):
    ts = dt.datetime(2026, 10, 5, 12, tzinfo=dt.timezone.utc)
    sequence = {"user_id": 'u "1", the first', "item_ids": ["a,b", 'q"x', "\\z"], "is_skip": [True, False, None],
                "completion": [0.5, math.nan, None], "ts": [ts, ts, ts], "valid_idx": 0, "test_idx": 1, "n_events": 3}
    _lake_partition(pg_cfg, "sequences", "2026-10-05", [sequence], contracts.SEQUENCE)
    pools = [{"user_id": "u1", "pool": "hard", "item_id": f"i{i}", "pool_rank": i} for i in range(3)]
    _lake_partition(pg_cfg, "phns_pools", "2026-10-05", pools, contracts.PHNS_POOL)
    _lake_partition(pg_cfg, "phns_pools", "2026-10-06", pools[:1], contracts.PHNS_POOL)

    assert sync_lake(pg_cfg) == {**{t: 0 for t in ("events_clean", "quarantine", "item_catalog", "sessionized_events",
                                                   "phns_negatives", "model_runs")}, "sequences": 1, "phns_pools": 4}
    ((user, items, skips, completion, when, day),) = _pg_rows(
        pg_cfg, "SELECT user_id, item_ids, is_skip, completion, ts, dt::text FROM lake.sequences")
    assert (user, items, skips, completion[0], completion[2], when, day) == \
        (sequence["user_id"], sequence["item_ids"], [True, False, None], 0.5, None, [ts, ts, ts], "2026-10-05")
    assert math.isnan(completion[1])

    assert set(sync_lake(pg_cfg).values()) == {0}  # nothing changed: nothing loaded
    con = postgres.connect(pg_cfg)
    with con, con.cursor() as cur:  # a table created before its contract gained a column
        cur.execute("ALTER TABLE lake.phns_pools DROP COLUMN pool_rank")
    con.close()
    time.sleep(0.01)
    _lake_partition(pg_cfg, "phns_pools", "2026-10-06", pools, contracts.PHNS_POOL)  # a re-run rewrites a date
    for stale in Path(pg_cfg.lake_path("phns_pools", "2026-10-05")).iterdir():
        stale.unlink()
    Path(pg_cfg.lake_path("phns_pools", "2026-10-05")).rmdir()  # and a date is gone from the lake
    assert sync_lake(pg_cfg)["phns_pools"] == 3
    assert _pg_rows(pg_cfg, "SELECT dt::text, count(*), max(pool_rank) FROM lake.phns_pools GROUP BY 1") \
        == [("2026-10-06", 3, 2)]


# --------------------------------------------------------------------------- dbt on both targets


def _duckdb_rows(cfg, table: str) -> tuple[list[str], list[tuple]]:
    with duckdb.connect(cfg.paths.warehouse, read_only=True) as con:
        cur = con.execute(f"SELECT * FROM main.{table}")
        return [d[0] for d in cur.description], cur.fetchall()


def _comparable(value):
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 9)
    if isinstance(value, list):
        return tuple(_comparable(v) for v in value)
    if hasattr(value, "is_finite"):  # Decimal
        return round(float(value), 9)
    return value


def _sorted_rows(rows: list[tuple]) -> list[tuple]:
    return sorted((tuple(_comparable(v) for v in row) for row in rows), key=repr)


def test_dbt_builds_the_same_marts_with_the_same_tests_on_postgres(pg_cfg, tmp_path):
    duck = load_config({"ENCORE_HOME": str(tmp_path / "duck")})
    for cfg in (duck, pg_cfg):
        write_fixture_lake(Path(cfg.paths.lake))
    create_recommendations_table(Path(duck.paths.warehouse))
    built = {name: dbt_build(cfg, D, selector=FEATURES) for name, cfg in (("duckdb", duck), ("postgres", pg_cfg))}
    create_recommendations_table(Path(duck.paths.warehouse), _csv("recommendations.csv"))
    rows = _csv("recommendations.csv")
    for day in sorted({r["run_date"] for r in rows}):
        publish_recommendations(pg_cfg, day, pa.Table.from_pylist([
            {"run_date": dt.date.fromisoformat(day), "user_id": r["user_id"], "rank": int(r["rank"]),
             "item_id": r["item_id"], "score": float(r["score"]), "soft_label": float(r["soft_label"]),
             "p_skip": float(r["p_skip"]), "predicted_completion": None, "model_name": "fixture_model",
             "model_version": "1", "created_at": dt.datetime(2026, 10, 9, tzinfo=dt.timezone.utc)}
            for r in rows if r["run_date"] == day], schema=contracts.arrow_schema(contracts.RECOMMENDATION)))
    analyst = {name: dbt_build(cfg, D_PLUS_1, selector=ANALYST) for name, cfg in (("duckdb", duck), ("postgres", pg_cfg))}

    for summaries in (built, analyst):  # the same nodes ran, and every test passed, on both targets
        results = {name: sorted((r["unique_id"], r["status"]) for r in s["results"]) for name, s in summaries.items()}
        assert results["duckdb"] == results["postgres"]
        assert {status for _, status in results["postgres"]} == {"success", "pass"}
    marts = [*INCREMENTAL_MARTS, "rec_latest_with_items", "rec_daily_quality", "model_leaderboard"]
    for mart in marts:
        columns, duck_rows = _duckdb_rows(duck, mart)
        pg_rows = _pg_rows(pg_cfg, f"SELECT {', '.join(columns)} FROM public.{mart}")
        assert duck_rows, mart
        assert _sorted_rows(pg_rows) == _sorted_rows(duck_rows), mart
    # a second build of the date on Postgres is idempotent (incremental delete+insert)
    before = {m: _pg_rows(pg_cfg, f"SELECT count(*) FROM public.{m}") for m in INCREMENTAL_MARTS}
    dbt_build(pg_cfg, D, selector=FEATURES)
    assert {m: _pg_rows(pg_cfg, f"SELECT count(*) FROM public.{m}") for m in INCREMENTAL_MARTS} == before


# --------------------------------------------------------------------------- server and processes


def test_server_start_is_idempotent_stop_keeps_the_data_and_a_busy_port_is_named():
    root = Path(tempfile.mkdtemp(prefix="encore-test-pg-"))
    server = PostgresServer(root, port=free_port())
    try:
        pid = server.start()
        assert server.start() == pid  # already running: nothing started
        server.sql("CREATE TABLE kept (x int); INSERT INTO kept VALUES (42);")
        assert server.stop() == pid and server.pid() is None
        server.start()
        assert server.sql("SELECT x FROM kept;").strip() == "42"
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        other = PostgresServer(root, port=busy.getsockname()[1])
        with pytest.raises(PostgresError, match="in use"):
            other.start()


def _alive(pid: int) -> bool:
    """Running, not a zombie (an orphan's exit is reaped by whatever PID 1 is, maybe late)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_service_processes_stop_by_their_pid_with_what_they_forked(tmp_path):
    pid_file, log_file = tmp_path / "svc.pid", tmp_path / "svc.log"
    # a service that forks a worker, like the scheduler's LocalExecutor
    worker_file = tmp_path / "worker.pid"
    pid = processes.start(["bash", "-c", f"sleep 300 & echo $! > {worker_file}; wait"], {"PATH": "/usr/bin:/bin"},
                          log_file, pid_file, cwd=tmp_path)
    assert processes.running_pid(pid_file) == pid
    deadline = time.monotonic() + 10
    while not worker_file.exists() or not worker_file.read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    worker = int(worker_file.read_text())
    assert processes.stop(pid_file) == pid
    assert processes.running_pid(pid_file) is None and not pid_file.exists()
    assert not _alive(worker)  # the worker went too
    # a pid file whose PID now belongs to another process (another start time) is not ours
    pid_file.write_text(f"{os.getpid()} 1\n")
    assert processes.running_pid(pid_file) is None
    assert processes.stop(pid_file) is None  # and nothing is signalled


def test_secrets_come_from_the_environment_or_stay_in_the_state_dir(tmp_path, monkeypatch):
    from encore.deploy.state import DeployState

    state = DeployState(tmp_path / "deploy")
    monkeypatch.delenv("ENCORE_PG_PASSWORD", raising=False)
    generated = state.secret("pg_password")
    assert state.secret("pg_password") == generated and len(generated) >= 24
    assert (state.secrets / "pg_password").stat().st_mode & 0o777 == 0o600
    monkeypatch.setenv("ENCORE_PG_PASSWORD", "from:env\\x")
    assert state.secret("pg_password") == "from:env\\x"
    state.write_pgpass(55432, {ROLE: "from:env\\x"})
    assert state.pgpass.read_text() == "*:55432:*:encore:from\\:env\\\\x\n"
    assert json.dumps(load_config({"ENCORE_HOME": str(tmp_path)}).env()).count("from:env") == 0


def test_scaleout_example_config_loads():
    """infra/encore.scaleout.toml (a plan for a cluster) names only settings the config has."""
    example = Path(__file__).resolve().parents[1] / "infra" / "encore.scaleout.toml"
    cfg = load_config({"ENCORE_CONFIG": str(example)})
    assert (cfg.spark.mode, cfg.paths.lake) == ("submit", "s3a://encore-lake/prod")
