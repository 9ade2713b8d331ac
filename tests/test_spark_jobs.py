"""Spark jobs on a hand-computed fixture (D = 2026-10-05, gap 30 min, max_seq_len 4 -> keep 5).

Users: u_gap (gap exactly 30 min vs 30 min 1 s), u_tie (timestamp tie + out-of-order rows +
truncation), u_src (source session ids, a skip-only session), u_mid (session across
midnight), u_pool (a skipped item later consumed), u_none (no hard negatives).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from pyspark.sql import SparkSession

from encore.core import lake
from encore.core.config import ConfigError, load_config
from fixtures.spark.clean_events import event, write_clean_events
from benchmarks.duckdb_reference import build_phns_pools_duckdb, build_sequences_duckdb, build_sessionized_duckdb
from spark_jobs.phns_pools import pool_and_negative_stats
from spark_jobs.pipeline import backfill_sessionized, run_all
from spark_jobs.session import driver_java_options, jit_mode
from spark_jobs.sessionize import run_sessionize

pytestmark = pytest.mark.spark

D = "2026-10-05"
D_PREV = "2026-10-04"

EVENTS = [
    event("u_gap", "A", "2026-10-05T10:00:00", 1.0),
    event("u_gap", "B", "2026-10-05T10:30:00", 0.1),  # exactly the gap: same session
    event("u_gap", "C", "2026-10-05T11:00:01", 0.9),  # one second past: new session
    event("u_gap", "D", "2026-10-05T11:05:00", 0.02),
    event("u_gap", "E", "2026-10-05T11:06:00", 0.8),
    # out of order in the file; Y and X share a timestamp, event_id t1 < t2 orders them
    event("u_tie", "Z", "2026-10-05T08:10:00", 1.0, event_id="t5"),
    event("u_tie", "X", "2026-10-05T08:00:00", 1.0, event_id="t2"),
    event("u_tie", "Y", "2026-10-05T08:00:00", 0.1, event_id="t1"),
    event("u_tie", "A", "2026-10-05T07:50:00", 1.0, event_id="t0"),
    event("u_tie", "R", "2026-10-05T07:40:00", 1.0, event_id="s9"),
    event("u_tie", "Q", "2026-10-05T07:30:00", 1.0, event_id="s8"),
    event("u_src", "A", "2026-10-05T09:00:00", skip_level=0, session_id="s1"),
    event("u_src", "B", "2026-10-05T09:01:00", skip_level=1, session_id="s1"),
    event("u_src", "C", "2026-10-05T09:02:00", skip_level=3, session_id="s1"),
    event("u_src", "D", "2026-10-05T13:00:00", skip_level=2, session_id="s2"),  # skip-only session
    event("u_src", "F", "2026-10-05T13:01:00", skip_level=1, session_id="s2"),
    event("u_mid", "A", "2026-10-04T23:50:00", 1.0),
    event("u_mid", "G", "2026-10-05T00:10:00", 1.0),
    event("u_mid", "C", "2026-10-05T00:20:00", 1.0),
    event("u_pool", "H", "2026-10-03T10:00:00", 0.0),
    event("u_pool", "J", "2026-10-03T10:01:00", 0.1),
    event("u_pool", "K", "2026-10-03T10:02:00", 0.02),
    event("u_pool", "K", "2026-10-05T12:00:00", 1.0),  # consumed later: never a negative
    event("u_pool", "A", "2026-10-05T12:01:00", 1.0),
    event("u_none", "A", "2026-10-05T15:00:00", 1.0),
    event("u_none", "C", "2026-10-05T15:01:00", 1.0),
]
CATALOGUE = {e["item_id"] for e in EVENTS}
SEEN = {(e["user_id"], e["item_id"]) for e in EVENTS}
POSITIVE = {("u_pool", "K")} | {
    (e["user_id"], e["item_id"]) for e in EVENTS
    if (e["completion"] is not None and e["completion"] >= 0.25) or e["skip_level"] in (0, 3)
}


def epoch(ts: str) -> int:
    return int(dt.datetime.fromisoformat(ts).replace(tzinfo=dt.timezone.utc).timestamp())


@pytest.fixture(scope="module")
def spark():
    session = (
        SparkSession.builder.master("local[2]")
        .appName("test_spark_jobs")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    yield session
    session.stop()


FIXTURE_SETTINGS = {
    "training": {"max_seq_len": 4},
    "sessions": {"sequence_events": 2},  # below one window: at least max_seq_len + 1 = 5 are kept
    "phns": {"n_negatives": 4, "pool_size": 3, "trending_window_days": 2, "tailing_min_support": 2},
}


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    home = tmp_path_factory.mktemp("encore")
    config = load_config(environ={}, paths={"home": str(home)}, **FIXTURE_SETTINGS)
    write_clean_events(config, EVENTS)
    return config


@pytest.fixture(scope="module")
def stats(spark, cfg):
    return run_all(cfg, D, spark=spark)


def read(cfg, table: str, day: str = D) -> list[dict]:
    return lake.read_partition(cfg, table, day).to_pylist()


def rows_by_user(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for row in sorted(rows, key=lambda r: (r["user_id"], r["ts"], r["event_id"])):
        out.setdefault(row["user_id"], []).append(row)
    return out


def test_sessions_split_only_after_more_than_the_gap(stats, cfg):
    u_gap = rows_by_user(read(cfg, "sessionized_events"))["u_gap"]
    first, second = f"u_gap#{epoch('2026-10-05T10:00:00')}", f"u_gap#{epoch('2026-10-05T11:00:01')}"
    assert [(r["item_id"], r["session_id"], r["position"]) for r in u_gap] == [
        ("A", first, 0), ("B", first, 1), ("C", second, 0), ("D", second, 1), ("E", second, 2)]
    assert [r["next_positive_item_id"] for r in u_gap] == [None, None, "E", "E", None]
    assert [(r["is_skip"], r["is_abandoned"]) for r in u_gap] == [
        (False, False), (True, False), (False, False), (True, True), (False, False)]


def test_ties_and_out_of_order_rows_follow_ts_then_event_id(stats, cfg):
    u_tie = read(cfg, "sessionized_events")
    u_tie = sorted((r for r in u_tie if r["user_id"] == "u_tie"), key=lambda r: r["position"])
    assert [r["item_id"] for r in u_tie] == ["Q", "R", "A", "Y", "X", "Z"]
    assert {r["session_id"] for r in u_tie} == {f"u_tie#{epoch('2026-10-05T07:30:00')}"}
    assert [r["next_positive_item_id"] for r in u_tie] == ["R", "A", "X", "X", "Z", None]


def test_source_session_ids_are_kept_and_skip_levels_label(stats, cfg):
    u_src = rows_by_user(read(cfg, "sessionized_events"))["u_src"]
    assert [(r["item_id"], r["session_id"], r["position"], r["is_skip"]) for r in u_src] == [
        ("A", "s1", 0, False), ("B", "s1", 1, True), ("C", "s1", 2, False),
        ("D", "s2", 0, True), ("F", "s2", 1, True)]
    assert [r["next_positive_item_id"] for r in u_src] == ["C", "C", None, None, None]
    assert [r["engagement"] for r in u_src] == [1.0, 0.0, 1.0, 0.0, 0.0]


def test_session_across_midnight_has_one_id_in_both_days(spark, stats, cfg):
    run_sessionize(cfg, D_PREV, spark=spark)
    session = f"u_mid#{epoch('2026-10-04T23:50:00')}"
    before = [(r["item_id"], r["session_id"], r["position"]) for r in read(cfg, "sessionized_events", D_PREV)]
    assert before == [("A", session, 0)]
    today = rows_by_user(read(cfg, "sessionized_events"))["u_mid"]
    assert [(r["item_id"], r["session_id"], r["position"]) for r in today] == [("G", session, 1), ("C", session, 2)]


def test_sessionized_partition_holds_only_the_run_date(stats, cfg):
    rows = read(cfg, "sessionized_events")
    assert len(rows) == stats["sessionize"]["sessionized_events"] == 22
    assert {r["ts"].date().isoformat() for r in rows} == {D}
    assert len({r["event_id"] for r in rows}) == 22


def test_sequences_leave_last_out_and_exclusions(stats, cfg):
    sequences = {r["user_id"]: r for r in read(cfg, "sequences")}
    assert set(sequences) == {"u_gap", "u_tie", "u_mid"}
    u_gap, u_tie, u_mid = sequences["u_gap"], sequences["u_tie"], sequences["u_mid"]
    assert u_gap["item_ids"] == ["A", "B", "C", "D", "E"]
    assert u_gap["is_skip"] == [False, True, False, True, False]
    assert u_gap["completion"] == [1.0, 0.1, 0.9, 0.02, 0.8]
    assert (u_gap["valid_idx"], u_gap["test_idx"], u_gap["n_events"]) == (2, 4, 5)
    assert u_tie["item_ids"] == ["R", "A", "Y", "X", "Z"]  # truncated to max_seq_len + 1 (> sequence_events)
    assert (u_tie["valid_idx"], u_tie["test_idx"], u_tie["n_events"]) == (3, 4, 6)
    assert u_tie["earlier_item_ids"] == ["Q"] and u_gap["earlier_item_ids"] == []  # the older events' items
    assert (u_mid["item_ids"], u_mid["valid_idx"], u_mid["test_idx"]) == (["A", "G", "C"], 1, 2)
    assert [t.isoformat() for t in u_mid["ts"]] == [
        "2026-10-04T23:50:00+00:00", "2026-10-05T00:10:00+00:00", "2026-10-05T00:20:00+00:00"]
    seq = stats["sequences"]
    assert (seq["users_total"], seq["users_kept"], seq["users_excluded_few_positives"]) == (6, 3, 3)
    # no target: u_gap's first session, u_src's skip-only s2, u_pool's all-skipped 10-03 session
    assert (seq["sessions_total"], seq["sessions_without_target"]) == (9, 3)


def test_sequences_load_as_arrow_list_columns(stats, cfg):
    table = pq.read_table(cfg.lake_path("sequences", D))
    assert str(table.schema.field("item_ids").type) == "list<element: string>"
    assert str(table.schema.field("ts").type) == "list<element: timestamp[us, tz=UTC]>"


def test_phns_pools(stats, cfg):
    pools = {}
    for r in read(cfg, "phns_pools"):
        pools.setdefault((r["user_id"], r["pool"]), []).append((r["pool_rank"], r["item_id"]))
    pools = {key: [item for _, item in sorted(value)] for key, value in pools.items()}
    assert pools == {
        ("u_gap", "hard"): ["D", "B"],  # lowest engagement first
        ("u_tie", "hard"): ["Y"], ("u_tie", "trending"): ["C", "B"], ("u_tie", "tailing"): ["D"],
        ("u_src", "hard"): ["F", "D", "B"],  # equal engagement: most recent first
        ("u_mid", "trending"): ["B"], ("u_mid", "tailing"): ["D"],
        ("u_pool", "hard"): ["H", "J"], ("u_pool", "trending"): ["C", "B"], ("u_pool", "tailing"): ["D"],
        ("u_none", "trending"): ["B"], ("u_none", "tailing"): ["D"],
    }


def test_pool_and_negative_counts_reconcile_with_the_written_rows(stats, cfg):
    written_pools, written_negatives = {}, {}
    for r in read(cfg, "phns_pools"):
        written_pools[r["pool"]] = written_pools.get(r["pool"], 0) + 1
    for r in read(cfg, "phns_negatives"):
        written_negatives[r["mix"]] = written_negatives.get(r["mix"], 0) + 1
    assert written_pools == {"hard": 8, "trending": 6, "tailing": 4}  # from test_phns_pools' table
    assert stats["phns_pools"]["pool_rows"] == written_pools
    assert stats["phns_pools"]["phns_pools"] == 18
    assert {mix: m["rows"] for mix, m in stats["phns_pools"]["mixes"].items()} == written_negatives
    assert stats["phns_pools"]["phns_negatives"] == sum(written_negatives.values())


def test_pool_rows_count_the_pools_not_a_mix_quota(spark, cfg):
    # one user with 5 hard, 3 trending, 2 tailing items, 2 draws; mix M takes 2 PHNS + 2 uniform of n = 4
    quotas = spark.createDataFrame(
        [("u", "M", draw, 2, 2, False, False, 5, 3, 2) for draw in (0, 1)]
        + [("u", "UNIFORM", draw, 0, 4, False, False, 5, 3, 2) for draw in (0, 1)],
        "user_id string, mix string, draw int, n_phns int, n_uniform int, phns_short boolean, short boolean, "
        "size_hard int, size_trending int, size_tailing int",
    )
    counts = pool_and_negative_stats(quotas, cfg)
    assert counts["pool_rows"] == {"hard": 5, "trending": 3, "tailing": 2}
    assert counts["phns_pools"] == 10
    assert counts["mixes"]["M"] == {"rows": 8, "users": 1, "phns": 4, "users_phns_filled_uniformly": 0,
                                    "users_short": 0}
    assert counts["mixes"]["UNIFORM"]["rows"] == 8 and counts["phns_negatives"] == 16


def negatives_of(cfg, user: str, mix: str, draw: int = 0) -> list[tuple[str, str]]:
    rows = [r for r in read(cfg, "phns_negatives") if r["user_id"] == user and r["mix"] == mix and r["draw"] == draw]
    assert sorted(r["sample_idx"] for r in rows) == list(range(len(rows)))
    return [(r["pool"], r["item_id"]) for r in sorted(rows, key=lambda r: r["sample_idx"])]


def test_a_mix_is_its_share_of_phns_negatives_round_robin_over_the_pools(stats, cfg):
    # n = 4: HARD wants round(2.0) = 2 PHNS negatives, MEDIUM round(1.2) = 1, EASY round(0.8) = 1;
    # they are taken in turns from the user's hard, trending and tailing pools (test_phns_pools' table)
    for draw in range(3):
        hard_mix, medium = negatives_of(cfg, "u_pool", "HARD", draw), negatives_of(cfg, "u_pool", "MEDIUM", draw)
        assert [p for p, _ in hard_mix] == ["hard", "trending", "uniform", "uniform"]
        assert hard_mix[0][1] in {"H", "J"} and hard_mix[1][1] in {"C", "B"}
        assert [p for p, _ in medium] == ["hard", "uniform", "uniform", "uniform"]
        assert medium[0][1] == hard_mix[0][1]  # a larger share extends a smaller one
    # no hard items: the turns go to the global pools (u_none: trending B, tailing D)
    assert negatives_of(cfg, "u_none", "HARD")[:2] == [("trending", "B"), ("tailing", "D")]
    assert negatives_of(cfg, "u_none", "MEDIUM")[0] == ("trending", "B")
    # u_gap's pools are its two hard items only: HARD takes both
    assert [p for p, _ in negatives_of(cfg, "u_gap", "HARD")] == ["hard", "hard", "uniform", "uniform"]
    mixes = stats["phns_pools"]["mixes"]
    assert all(m["users_phns_filled_uniformly"] == 0 for m in mixes.values())  # every user has >= 2 PHNS items
    assert mixes["HARD"]["phns"] == 6 * 3 * 2 and mixes["MEDIUM"]["phns"] == 6 * 3
    assert all(m["users_short"] == 0 for m in mixes.values())  # 15 items: every user has 4 unseen ones


def test_each_negative_carries_its_oversampling_against_a_uniform_draw(stats, cfg):
    # n = 4 of 15 catalogue items; a uniform draw holds each unseen item with probability 4 / unseen.
    # u_pool saw H J K A (11 unseen; hard pool H J, trending C B). HARD takes 1 of its 2 hard items
    # (1/2), 1 of its 2 trending (1/2) and 2 of the 11 - 1 unseen items left (2/10):
    def oversampling(user, mix):
        rows = [r for r in read(cfg, "phns_negatives") if r["user_id"] == user and r["mix"] == mix and r["draw"] == 0]
        return [(r["pool"], pytest.approx(r["oversampling"])) for r in sorted(rows, key=lambda r: r["sample_idx"])]

    assert oversampling("u_pool", "HARD") == [("hard", 0.5 / (4 / 11)), ("trending", 0.5 / (4 / 11)),
                                              ("uniform", 0.2 / (4 / 11)), ("uniform", 0.2 / (4 / 11))]
    # MEDIUM: 1 hard item, then 3 of the 11 unseen ones
    assert oversampling("u_pool", "MEDIUM") == [("hard", 0.5 / (4 / 11))] + [("uniform", (3 / 11) / (4 / 11))] * 3
    assert oversampling("u_pool", "UNIFORM") == [("uniform", 1.0)] * 4
    # u_gap saw A B C D E (10 unseen): HARD takes both its hard items (probability 1) and 2 of 10 unseen
    assert oversampling("u_gap", "HARD") == [("hard", 1 / 0.4)] * 2 + [("uniform", 0.2 / 0.4)] * 2


def test_negatives_never_seen_positive_and_uniform_never_seen(stats, cfg):
    negatives = read(cfg, "phns_negatives")
    assert {r["mix"] for r in negatives} == {"HARD", "MEDIUM", "EASY", "UNIFORM"}
    assert {r["draw"] for r in negatives} == {0, 1, 2}
    assert not [r for r in negatives if (r["user_id"], r["item_id"]) in POSITIVE]
    assert not [r for r in negatives if r["pool"] == "uniform" and (r["user_id"], r["item_id"]) in SEEN]
    per_sample: dict = {}
    for r in negatives:
        per_sample.setdefault((r["user_id"], r["mix"], r["draw"]), set()).add(r["item_id"])
    # a global-pool item taken as a PHNS negative is not drawn again uniformly: 4 distinct items each
    assert {len(items) for items in per_sample.values()} == {4}
    users = {e["user_id"] for e in EVENTS}
    assert {key: len(items) for key, items in per_sample.items() if key[1] == "UNIFORM"} == {
        (u, "UNIFORM", d): 4 for u in users for d in range(3)}
    assert set().union(*per_sample.values()) <= CATALOGUE
    # the draws are independent samples: they differ
    assert any(per_sample[(u, "UNIFORM", 0)] != per_sample[(u, "UNIFORM", 1)] for u in users)


def lake_snapshot(cfg) -> dict[str, list]:
    snapshot = {}
    for table in ("sessionized_events", "sequences", "phns_pools", "phns_negatives"):
        rows = read(cfg, table)
        snapshot[table] = sorted(rows, key=repr)
        snapshot[table + "_files"] = len(list(Path(cfg.lake_path(table, D)).glob("*.parquet")))
    return snapshot


def test_rerun_of_a_date_is_idempotent_and_other_dates_untouched(spark, stats, cfg):
    run_sessionize(cfg, D_PREV, spark=spark)
    previous_files = {p: p.stat().st_mtime_ns for p in Path(cfg.lake_path("sessionized_events", D_PREV)).glob("*")}
    before = lake_snapshot(cfg)
    assert all(before[t + "_files"] == 1 for t in ("sessionized_events", "sequences", "phns_pools"))
    again = run_all(cfg, D, spark=spark)
    assert lake_snapshot(cfg) == before
    assert again["phns_pools"]["mixes"] == stats["phns_pools"]["mixes"]
    assert {p: p.stat().st_mtime_ns for p in Path(cfg.lake_path("sessionized_events", D_PREV)).glob("*")} == previous_files


def test_duckdb_reference_agrees_with_spark(stats, cfg):
    events = lake.read_table(cfg, "events_clean")
    key = ("user_id", "ts", "event_id")

    def normalized(rows, columns):
        return sorted((tuple(r[c] for c in columns) for r in rows), key=repr)

    sessionized = [r for r in build_sessionized_duckdb(events, cfg, D).to_pylist() if r["ts"].date().isoformat() == D]
    columns = [c for c in sessionized[0] if c not in key] + list(key)
    assert normalized(sessionized, columns) == normalized(read(cfg, "sessionized_events"), columns)
    sequences = build_sequences_duckdb(events, cfg, D)
    assert normalized(sequences.to_pylist(), sequences.column_names) == normalized(
        read(cfg, "sequences"), sequences.column_names)
    pools = build_phns_pools_duckdb(events, cfg, D)
    assert normalized(pools.to_pylist(), pools.column_names) == normalized(read(cfg, "phns_pools"), pools.column_names)


def test_missing_input_names_the_table(spark, tmp_path):
    empty = load_config(environ={}, paths={"home": str(tmp_path)})
    with pytest.raises(FileNotFoundError, match="events_clean"):
        run_all(empty, D, spark=spark)



HISTORY = [
    event("u_a", "A", "2026-10-01T23:50:00", 1.0),
    event("u_a", "B", "2026-10-02T00:05:00", 0.1),  # same session across midnight, skipped
    event("u_a", "C", "2026-10-02T00:10:00", 1.0),  # A's next positive, but on the next day
    event("u_a", "D", "2026-10-03T10:00:00", 1.0),
    event("u_a", "E", "2026-10-03T10:01:00", 1.0),
    event("u_b", "A", "2026-10-01T08:00:00", 0.9),
    event("u_b", "F", "2026-10-04T09:00:00", 0.02),
    event("u_b", "G", "2026-10-04T09:05:00", 1.0),
    event("u_b", "H", "2026-10-05T09:00:00", 1.0),  # the run date itself: not history
]


def sessionized_files(cfg, day: str) -> dict:
    return {p.name: p.stat().st_mtime_ns for p in Path(cfg.lake_path("sessionized_events", day)).glob("*")}


def test_backfill_writes_missing_history_once_as_per_date_runs_would(spark, tmp_path):
    overrides = dict(environ={}, training={"max_seq_len": 4})
    backfilled = load_config(paths={"home": str(tmp_path / "backfill")}, **overrides)
    per_date = load_config(paths={"home": str(tmp_path / "per_date")}, **overrides)
    for config in (backfilled, per_date):
        write_clean_events(config, HISTORY)
    run_sessionize(backfilled, "2026-10-02", spark=spark)  # already there: must stay untouched
    existing = sessionized_files(backfilled, "2026-10-02")

    stats = backfill_sessionized(backfilled, "2026-10-05", spark=spark)

    assert stats["rows"] == {"2026-10-01": 2, "2026-10-03": 2, "2026-10-04": 2}
    assert lake.partition_dates(backfilled, "sessionized_events") == [
        "2026-10-01", "2026-10-02", "2026-10-03", "2026-10-04"]
    assert sessionized_files(backfilled, "2026-10-02") == existing
    assert all(len(list(Path(backfilled.lake_path("sessionized_events", d)).glob("*.parquet"))) == 1
               for d in stats["rows"])
    first_day = {r["user_id"]: r for r in read(backfilled, "sessionized_events", "2026-10-01")}
    assert first_day["u_a"]["session_id"] == f"u_a#{epoch('2026-10-01T23:50:00')}"
    assert first_day["u_a"]["next_positive_item_id"] is None  # C is on 10-02: a nightly run of 10-01 cannot see it
    for day in stats["rows"]:
        run_sessionize(per_date, day, spark=spark)
        assert sorted(read(backfilled, "sessionized_events", day), key=repr) == sorted(
            read(per_date, "sessionized_events", day), key=repr)
    assert backfill_sessionized(backfilled, "2026-10-05", spark=spark)["rows"] == {}


@pytest.mark.parametrize(
    "spark_settings, run_date, mode",
    [
        ({}, D, "quick"),  # a few hundred bytes of events: C1 only
        ({"quick_jit_max_mb": 0}, D, "hot"),  # more than the limit: C2 for the hottest code
        ({}, None, "hot"),  # size unknown
        ({"jit": "full"}, D, "full"),
        ({"jit": "quick", "quick_jit_max_mb": 0}, D, "quick"),
    ],
)
def test_jit_follows_the_size_of_the_events_read(cfg, spark_settings, run_date, mode):
    settings = load_config(environ={}, paths={"home": cfg.paths.home}, spark=spark_settings)
    assert jit_mode(settings, run_date) == mode


def test_driver_java_options_add_the_configured_ones(cfg):
    recording = "-XX:StartFlightRecording=filename=/tmp/x.jfr,settings=profile"
    settings = load_config(environ={"ENCORE__SPARK__JAVA_OPTIONS": f"{recording}  -XX:+UseParallelGC"},
                           paths={"home": cfg.paths.home}, spark={"jit": "quick"})
    tmpdir = f"-Djava.io.tmpdir={cfg.paths.tmp}/spark"  # temp files under the state dir, removed per night
    assert driver_java_options(settings, D).split() == [
        "-Duser.timezone=UTC", tmpdir, "-XX:TieredStopAtLevel=1", recording, "-XX:+UseParallelGC"]
    assert driver_java_options(load_config(environ={}, paths={"home": cfg.paths.home}, spark={"jit": "full"}), D) == (
        f"-Duser.timezone=UTC {tmpdir}")
    hot = load_config(environ={}, paths={"home": cfg.paths.home}, spark={"jit": "hot"})
    assert driver_java_options(hot, D).split()[2:] == [  # 30x the JDK's thresholds for C2
        "-XX:Tier4InvocationThreshold=150000", "-XX:Tier4MinInvocationThreshold=18000",
        "-XX:Tier4CompileThreshold=450000", "-XX:Tier4BackEdgeThreshold=1200000"]


def test_spark_submit_writes_what_the_in_process_run_writes(stats, cfg, tmp_path):
    """spark.mode = submit: the nightly task launches spark-submit (a new driver JVM) on spark_jobs/submit.py."""
    from encore.nightly.stages import spark_jobs

    submitted = load_config(
        environ={}, paths={"home": str(tmp_path)}, **FIXTURE_SETTINGS,
        spark={"mode": "submit", "master": "local[1]", "driver_memory": "1g", "shuffle_partitions": 2},
    )
    write_clean_events(submitted, EVENTS)
    result = spark_jobs(submitted, D)
    assert result["submitted"].split()[0].endswith("spark-submit") and "--run-date 2026-10-05" in result["submitted"]
    for job in ("sessionize", "sequences", "phns_pools"):
        assert {k: v for k, v in result[job].items() if "seconds" not in k} == {
            k: v for k, v in stats[job].items() if "seconds" not in k}
    for table in ("sessionized_events", "sequences", "phns_pools", "phns_negatives"):
        assert sorted(read(submitted, table), key=repr) == sorted(read(cfg, table), key=repr)
    # the dates before D in the lookback window were sessionized too, as in-process nights do
    assert result["history_sessionized_dates"] == 2 and lake.partition_dates(submitted, "sessionized_events") == [
        "2026-10-03", D_PREV, D]


def spark_jobs_as_connect_client(cfg, day: str) -> dict:
    """The nightly's Spark task for ``day`` in a process of its own (a Connect session switches
    pyspark to Connect mode process-wide), with ``cfg`` in its environment; its stats."""
    client = ("import json; from encore.core.config import load_config; from encore.nightly.stages import spark_jobs; "
              f"print(json.dumps(spark_jobs(load_config(), '{day}'), default=str))")
    done = subprocess.run([sys.executable, "-c", client], env={**os.environ, **cfg.env()},
                          stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_spark_connect_writes_what_the_in_process_run_writes(stats, cfg, tmp_path):
    """spark.mode = connect: the nightly task is a client of a standing Spark Connect server."""
    from spark_jobs.connect_server import free_port, start_server, stop_server

    port = free_port()
    server_cfg = load_config(environ={}, paths={"home": str(tmp_path)},
                             spark={"master": "local[1]", "driver_memory": "1g"})
    server = start_server(server_cfg, port, tmp_path / "connect-server.log")
    try:
        connected = load_config(
            environ={}, paths={"home": str(tmp_path)}, **FIXTURE_SETTINGS,
            spark={"mode": "connect", "remote": f"sc://localhost:{port}", "shuffle_partitions": 2},
        )
        write_clean_events(connected, EVENTS)
        result = spark_jobs_as_connect_client(connected, D)
    finally:
        stop_server(server)
    for job in ("sessionize", "sequences", "phns_pools"):
        assert {k: v for k, v in result[job].items() if "seconds" not in k} == {
            k: v for k, v in stats[job].items() if "seconds" not in k}
    for table in ("sessionized_events", "sequences", "phns_pools", "phns_negatives"):
        assert sorted(read(connected, table), key=repr) == sorted(read(cfg, table), key=repr)
    assert result["history_sessionized_dates"] == 2


def test_connect_mode_needs_a_spark_connect_url():
    with pytest.raises(ConfigError, match="spark.remote must be a Spark Connect URL"):
        load_config(environ={}, spark={"mode": "connect"})
    with pytest.raises(ConfigError, match="spark.remote must be a Spark Connect URL"):
        load_config(environ={}, spark={"mode": "connect", "remote": "localhost:15002"})


def test_reading_a_lake_without_clean_events_names_the_path(spark, tmp_path):
    from spark_jobs.lake import read_clean_events

    empty = load_config(environ={}, paths={"home": str(tmp_path)})
    day = dt.date.fromisoformat(D)
    with pytest.raises(FileNotFoundError, match=f"no clean events at {empty.lake_path('events_clean')}"):
        read_clean_events(spark, empty, day, day)
