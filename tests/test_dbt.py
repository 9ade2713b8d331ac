"""dbt project (issue #5): build the marts on a hand-made lake and check the numbers.

Fixture: tests/fixtures/dbt/ (see its README). Run date D = 2026-10-08,
windows short / mid / long = 1 / 7 / 30 days ending at D inclusive.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from encore.core import contracts
from encore.core.config import load_config
from encore.features.dbt_runner import ANALYST, FEATURES, DbtBuildError, dbt_build, dbt_docs, project_dir

FIXTURES = Path(__file__).parent / "fixtures" / "dbt"
D = "2026-10-08"
D_PLUS_1 = "2026-10-09"
UTC = dt.timezone.utc


# --------------------------------------------------------------------------- fixture lake


def _csv(name: str) -> list[dict[str, str]]:
    with open(FIXTURES / name, newline="") as fh:
        return list(csv.DictReader(fh))


def _value(raw, type_name: str):
    if raw is None or raw == "":
        return None
    if type_name == "string":
        return str(raw)
    if type_name in ("int32", "int64"):
        return int(raw)
    if type_name == "double":
        return float(raw)
    if type_name == "bool":
        return raw if isinstance(raw, bool) else raw == "true"
    if type_name == "date":
        return dt.date.fromisoformat(raw)
    if type_name == "timestamp":
        return dt.datetime.fromisoformat(raw).replace(tzinfo=UTC)
    raise AssertionError(type_name)


def _write(lake: Path, table: str, columns, rows: list[dict], part: str, strict: bool = True) -> None:
    schema = contracts.arrow_schema(columns)
    if not strict:  # let broken fixtures hold nulls the contract forbids (as a buggy upstream job would)
        schema = pa.schema([f.with_nullable(True) for f in schema])
    data = {c.name: [_value(r.get(c.name), c.type) if not c.type.startswith("list<") else r[c.name] for r in rows]
            for c in columns}
    out = lake / table / f"dt={part}"
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(data, schema=schema), out / "part-00000.parquet")


def write_fixture_lake(lake: Path, *, catalog: bool = True, mutate_events=None) -> None:
    """The fixture as a Parquet lake with the contract schemas (hive dt= partitions)."""
    events = _csv("sessionized_events.csv")
    for e in events:
        e["engagement"] = e["completion"]
        e["source"] = "fixture"
    if mutate_events:
        events = mutate_events(events)
    for day in sorted({e["ts"][:10] for e in events}):
        rows = [e for e in events if e["ts"][:10] == day]
        _write(lake, "sessionized_events", contracts.SESSIONIZED_EVENT, rows, day, strict=mutate_events is None)
        clean = [dict(e, session_id=None, source_file=f"landing/dt={day}/events.parquet", source_row=i)
                 for i, e in enumerate(rows)]
        _write(lake, "events_clean", contracts.CLEAN_EVENT, clean, day)
    _write(lake, "quarantine", contracts.QUARANTINE, [], D)  # an empty partition: zero rows is valid
    _write(lake, "item_catalog", contracts.ITEM_CATALOG, _csv("item_catalog.csv") if catalog else [], "2026-10-01")

    by_id = {e["event_id"]: e for e in _csv("sessionized_events.csv")}
    sequences = []
    for s in json.loads((FIXTURES / "sequences.json").read_text()):
        ts = [dt.datetime.fromisoformat(by_id[e]["ts"]).replace(tzinfo=UTC) for e in s["events"]]
        sequences.append(dict(s, ts=ts, n_events=len(s["item_ids"])))
    for s in sequences:
        s["valid_idx"], s["test_idx"], s["n_events"] = str(s["valid_idx"]), str(s["test_idx"]), str(s["n_events"])
    _write(lake, "sequences", contracts.SEQUENCE, sequences, D)
    _write(lake, "phns_pools", contracts.PHNS_POOL, _csv("phns_pools.csv"), D)
    _write(lake, "phns_negatives", contracts.PHNS_NEGATIVE, _csv("phns_negatives.csv"), D)
    runs = _csv("model_runs.csv")
    for day in sorted({r["run_date"] for r in runs}):
        _write(lake, "model_runs", contracts.MODEL_RUN, [r for r in runs if r["run_date"] == day], day)


def create_recommendations_table(warehouse: Path, rows: list[dict] | None = None) -> None:
    """What the lead's publish step does: main.recommendations with the RECOMMENDATION columns."""
    sql_type = {"date": "DATE", "string": "VARCHAR", "int32": "INTEGER", "double": "DOUBLE",
                "timestamp": "TIMESTAMPTZ"}
    cols = ", ".join(f"{c.name} {sql_type[c.type]}{'' if c.nullable else ' NOT NULL'}" for c in contracts.RECOMMENDATION)
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(warehouse)) as con:
        con.execute(f"CREATE TABLE IF NOT EXISTS main.recommendations ({cols}, PRIMARY KEY (run_date, user_id, rank))")
        for r in rows or []:
            con.execute(
                "INSERT INTO main.recommendations VALUES (?, ?, ?, ?, ?, ?, ?, NULL, 'fixture_model', '1', TIMESTAMPTZ '2026-10-09 00:00:00+00')",
                [r["run_date"], r["user_id"], int(r["rank"]), r["item_id"], float(r["score"]),
                 float(r["soft_label"]), float(r["p_skip"])],
            )


def _cfg(home: Path):
    return load_config(environ={"ENCORE_HOME": str(home)})


def _query(cfg, sql: str, params=None) -> list[tuple]:
    with duckdb.connect(cfg.paths.warehouse, read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def _rows(cfg, sql: str, params=None) -> list[dict]:
    with duckdb.connect(cfg.paths.warehouse, read_only=True) as con:
        cur = con.execute(sql, params or [])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]


INCREMENTAL_MARTS = ("dim_items", "user_features", "fct_training_examples", "fct_user_negatives", "eval_candidates",
                     "fct_user_sequences")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Build everything for D on the fixture lake with an empty recommendations table. The state
    dir's name holds a quote: the lake path reaches SQL as a properly quoted literal (issue #22)."""
    home = tmp_path_factory.mktemp("o'brien_encore_home")
    cfg = _cfg(home)
    write_fixture_lake(Path(cfg.paths.lake))
    create_recommendations_table(Path(cfg.paths.warehouse))
    first = dbt_build(cfg, D)
    return cfg, first


# --------------------------------------------------------------------------- contracts


def test_sources_mirror_encore_contracts():
    """_sources.yml declares exactly the contract columns (plus the dt partition)."""
    sources = yaml.safe_load((project_dir() / "models" / "staging" / "_sources.yml").read_text())["sources"]
    lake = {t["name"]: [c["name"] for c in t["columns"]] for t in next(s for s in sources if s["name"] == "lake")["tables"]}
    expected = {
        "events_clean": contracts.CLEAN_EVENT, "quarantine": contracts.QUARANTINE,
        "item_catalog": contracts.ITEM_CATALOG, "sessionized_events": contracts.SESSIONIZED_EVENT,
        "sequences": contracts.SEQUENCE, "phns_pools": contracts.PHNS_POOL,
        "phns_negatives": contracts.PHNS_NEGATIVE, "model_runs": contracts.MODEL_RUN,
    }
    assert set(lake) == set(expected)
    for table, columns in expected.items():
        assert lake[table] == [c.name for c in columns] + ["dt"], table
    warehouse = next(s for s in sources if s["name"] == "warehouse")["tables"][0]
    assert [c["name"] for c in warehouse["columns"]] == [c.name for c in contracts.RECOMMENDATION]


def test_every_mart_column_is_described():
    for yml in (project_dir() / "models" / "marts").rglob("_*.yml"):
        for model in yaml.safe_load(yml.read_text())["models"]:
            assert model.get("description"), model["name"]
            for col in model["columns"]:
                assert col.get("description") and col.get("data_type"), f"{model['name']}.{col['name']}"


# --------------------------------------------------------------------------- feature marts


def test_build_passes_with_empty_recommendations(built):
    cfg, first = built
    assert first["success"]
    assert first["counts"].get("error", 0) == 0 and first["counts"].get("fail", 0) == 0
    assert first["counts"]["success"] > 0 and first["counts"]["pass"] > 0
    assert _query(cfg, "select count(*) from main.rec_daily_quality") == [(0,)]
    assert _query(cfg, "select count(*) from main.rec_latest_with_items") == [(0,)]


def test_dim_items_windows_and_engagement(built):
    cfg, _ = built
    rows = {r["item_id"]: r for r in _rows(cfg, "select * from main.dim_items where run_date = ?", [D])}
    assert sorted(rows) == ["i1", "i2", "i3", "i4", "i5", "i6"]
    # i1: D-7 (u1), D-1 (u1, u2), D (u1, u2-skip, u3); D-7 is outside the 7-day mid window.
    i1 = rows["i1"]
    assert (i1["plays_short"], i1["plays_mid"], i1["plays_long"], i1["plays_total"]) == (3, 5, 6, 6)
    assert (i1["users_short"], i1["users_mid"]) == (3, 2 + 1)
    assert i1["skip_rate_short"] == pytest.approx(1 / 3)
    assert i1["skip_rate_long"] == pytest.approx(1 / 6)
    assert i1["mean_completion_long"] == pytest.approx((1.0 + 0.9 + 0.8 + 1.0 + 0.03 + 1.0) / 6)
    assert i1["mean_completion_mid"] == pytest.approx((0.9 + 0.8 + 1.0 + 0.03 + 1.0) / 5)
    assert i1["abandon_rate_long"] == pytest.approx(1 / 6)
    assert i1["popularity_rank_mid"] == 1
    # i4: two skips (D-1 abandoned 0.02, D 0.2); D+1 events never count for D.
    i4 = rows["i4"]
    assert (i4["plays_short"], i4["plays_mid"], i4["skip_rate_mid"]) == (1, 2, 1.0)
    assert i4["mean_completion_mid"] == pytest.approx(0.11)
    # i3 played on D-1 only; its D+1 skip is in the future.
    assert (rows["i3"]["plays_short"], rows["i3"]["plays_mid"], rows["i3"]["skip_rate_mid"]) == (0, 1, 0.0)
    # i2: u1 skip (D-1), u2 0.5 (D); i6 played once on D.
    assert rows["i2"]["skip_rate_mid"] == pytest.approx(0.5) and rows["i2"]["mean_completion_mid"] == pytest.approx(0.3)
    # catalog attributes and PHNS flags (trending pool: i5 i3 i2; tailing: i6)
    assert (i1["title"], i1["genre"], i1["item_length_ms"], i1["in_catalog"]) == ("Song One", "pop", 200000, True)
    assert {k for k, r in rows.items() if r["is_trending"]} == {"i2", "i3", "i5"}
    assert {k for k, r in rows.items() if r["is_tailing"]} == {"i6"}


def test_user_features_windows(built):
    cfg, _ = built
    rows = {r["user_id"]: r for r in _rows(cfg, "select * from main.user_features where run_date = ?", [D])}
    assert sorted(rows) == ["u1", "u2", "u3"]
    u1 = rows["u1"]
    # u1: D-7 i1; D-1 i1 i2(skip) i3 i5; D i4(skip) i1 i6
    assert (u1["plays_short"], u1["plays_mid"], u1["plays_long"]) == (3, 7, 8)
    assert (u1["positives_short"], u1["positives_mid"]) == (2, 5)
    assert u1["skip_rate_short"] == pytest.approx(1 / 3)
    assert u1["skip_rate_mid"] == pytest.approx(2 / 7)
    assert u1["skip_rate_long"] == pytest.approx(2 / 8)
    assert u1["mean_completion_short"] == pytest.approx((0.2 + 1.0 + 0.9) / 3)
    assert (u1["sessions_short"], u1["sessions_mid"], u1["sessions_long"]) == (1, 2, 3)
    assert (u1["active_days_mid"], u1["active_days_long"]) == (2, 3)
    assert u1["distinct_items_long"] == 6 and u1["days_since_last_event"] == 0
    assert u1["hard_pool_size"] == 2
    u2 = rows["u2"]
    assert (u2["plays_mid"], u2["skip_rate_mid"], u2["abandon_rate_long"]) == (4, 0.5, 0.5)
    assert rows["u3"]["mean_completion_short"] == pytest.approx(0.55)


def test_training_examples_targets_and_soft_labels(built):
    cfg, _ = built
    rows = _rows(cfg, "select * from main.fct_training_examples where run_date = ? order by user_id, position", [D])
    got = {(r["user_id"], r["position"]): r for r in rows}
    # u1 = [i1 i1 i2* i3 i5 i4* i1 i6], valid_idx 6, test_idx 7; u2 = [i1 i4* i2 i1*], test_idx 2; u3 has no next positive.
    assert sorted(got) == [("u1", p) for p in range(7)] + [("u2", 0), ("u2", 1)]
    expect = {
        ("u1", 0): ("train", "i1", 0.9, ["i1", "i3", "i5"], [1.0, 0.6, 0.3]),
        ("u1", 1): ("train", "i3", 1.0, ["i3", "i5"], [1.0, 0.6]),  # the validation target is not a train label
        ("u1", 2): ("train", "i3", 1.0, ["i3", "i5"], [1.0, 0.6]),
        ("u1", 3): ("train", "i5", 0.7, ["i5"], [1.0]),
        ("u1", 4): ("valid", "i1", 1.0, ["i1"], [1.0]),
        ("u1", 5): ("valid", "i1", 1.0, ["i1"], [1.0]),
        ("u1", 6): ("test", "i6", 0.9, ["i6"], [1.0]),
        ("u2", 0): ("test", "i2", 0.5, ["i2"], [1.0]),
        ("u2", 1): ("test", "i2", 0.5, ["i2"], [1.0]),
    }
    for key, (split, target, weight, next_items, labels) in expect.items():
        r = got[key]
        assert (r["split"], r["target_item_id"]) == (split, target), key
        assert r["engagement_weight"] == pytest.approx(weight), key
        assert r["next_k_item_ids"] == next_items, key
        assert r["next_k_soft_labels"] == pytest.approx(labels), key
    assert got[("u1", 0)]["next_k_positions"] == [1, 3, 4]
    assert got[("u1", 0)]["next_k_completions"] == pytest.approx([0.9, 1.0, 0.7])
    assert got[("u2", 0)]["next_k_positions"] == [2]
    assert got[("u1", 5)]["input_item_id"] == "i4" and got[("u1", 5)]["input_is_skip"] is True


def test_user_negatives_lists(built):
    cfg, _ = built
    rows = {(r["user_id"], r["mix"], r["draw"]): r
            for r in _rows(cfg, "select * from main.fct_user_negatives where run_date = ?", [D])}
    assert len(rows) == 8
    u2 = rows[("u2", "MEDIUM", 0)]
    assert u2["negative_item_ids"] == ["i4", "i5", "i6"] and u2["negative_pools"] == ["hard", "trending", "uniform"]
    assert (u2["n_negatives"], u2["n_hard"], u2["n_trending"], u2["n_tailing"], u2["n_uniform"]) == (3, 1, 1, 0, 1)
    assert u2["negative_oversampling"] == [2.0, 1.5, 0.5]  # in sample_idx order, as the items
    assert rows[("u1", "MEDIUM", 1)]["negative_item_ids"] == ["i2", "i6"]  # another draw, its own list


def test_user_sequences_snapshot(built):
    cfg, _ = built
    rows = {r["user_id"]: r for r in _rows(cfg, "select * from main.fct_user_sequences where run_date = ?", [D])}
    assert sorted(rows) == ["u1", "u2", "u3"]
    assert rows["u1"]["item_ids"] == ["i1", "i1", "i2", "i3", "i5", "i4", "i1", "i6"]
    assert (rows["u1"]["valid_idx"], rows["u1"]["test_idx"], rows["u1"]["earlier_item_ids"]) == (6, 7, ["i3"])
    assert rows["u3"]["valid_idx"] == -1


def test_eval_candidates_sets(built):
    cfg, _ = built
    rows = _rows(cfg, "select user_id, eval_set, item_id, label, candidate_source from main.eval_candidates where run_date = ?", [D])
    sets: dict = {}
    for r in rows:
        sets.setdefault((r["user_id"], r["eval_set"]), {})[r["item_id"]] = (r["label"], r["candidate_source"])
    assert sets[("u1", "phns_hard")] == {"i6": (1, "target"), "i4": (0, "hard"), "i2": (0, "hard")}
    assert sets[("u2", "phns_hard")] == {"i2": (1, "target"), "i4": (0, "hard"), "i1": (0, "hard"),
                                         "i5": (0, "trending"), "i3": (0, "trending"), "i6": (0, "tailing")}
    assert sets[("u3", "phns_hard")] == {"i1": (1, "target"), "i5": (0, "hard"), "i2": (0, "trending"), "i6": (0, "tailing")}
    assert sets[("u1", "easy")] == {"i6": (1, "target"), "i5": (0, "uniform"), "i3": (0, "uniform")}  # draw 0 only
    # u2's uniform sample i2 is its own test target: it appears once, as the positive.
    assert sets[("u2", "easy")] == {"i2": (1, "target"), "i3": (0, "uniform")}
    assert sets[("u3", "easy")] == {"i1": (1, "target"), "i6": (0, "uniform")}
    assert len(rows) == 20


def test_model_leaderboard(built):
    cfg, _ = built
    rows = {(r["model_name"], r["metric"]): r for r in _rows(cfg, "select * from main.model_leaderboard")}
    sas = rows[("sasrec", "ndcg@10")]
    # the 2026-10-07 run (0.10) is older than the latest date and not averaged in
    assert sas["latest_run_date"] == dt.date(2026, 10, 8) and sas["n_seeds"] == 3
    assert sas["mean_value"] == pytest.approx(0.30) and sas["std_value"] == pytest.approx(0.10)
    assert sas["mean_pm_std"] == "0.3000 ± 0.1000"
    smoe = rows[("smoe_bst", "ndcg@10")]
    assert smoe["mean_value"] == pytest.approx(0.40) and smoe["std_value"] == pytest.approx(math.sqrt(0.005))
    assert (smoe["rank_in_split"], sas["rank_in_split"]) == (1, 2)
    # skip_mrr: lower is better -> smoe_bst (0.05) ranks above sasrec (0.06)
    assert rows[("smoe_bst", "skip_mrr")]["mean_value"] == pytest.approx(0.05)
    assert rows[("smoe_bst", "skip_mrr")]["lower_is_better"] is True
    assert (rows[("smoe_bst", "skip_mrr")]["rank_in_split"], rows[("sasrec", "skip_mrr")]["rank_in_split"]) == (1, 2)


def test_rerun_same_date_is_idempotent(built):
    cfg, _ = built
    count = " union all ".join(f"select '{m}', count(*) from main.{m}" for m in INCREMENTAL_MARTS)
    before = dict(_query(cfg, count))
    assert all(before.values())
    dbt_build(cfg, D, selector=FEATURES)
    assert dict(_query(cfg, count)) == before
    # the incremental tables really are incremental (kept per run_date), not rebuilt tables
    manifest = json.loads((Path(cfg.paths.home) / "dbt" / "target" / "manifest.json").read_text())
    for m in INCREMENTAL_MARTS:
        node = manifest["nodes"][f"model.encore.{m}"]["config"]
        assert (node["materialized"], node["incremental_strategy"], node["unique_key"]) == ("incremental", "delete+insert", "run_date")


def test_a_feature_mart_built_before_a_new_column_gets_it_on_the_next_build(built):
    # an upgrade adds a column to an incremental mart (here fct_user_negatives.negative_oversampling):
    # the next build of the date appends it to the existing table instead of failing
    import duckdb

    cfg, _ = built
    with duckdb.connect(cfg.paths.warehouse) as con:
        con.execute("ALTER TABLE main.fct_user_negatives DROP COLUMN negative_oversampling")
    dbt_build(cfg, D, selector=FEATURES)
    rows = {(r["user_id"], r["mix"], r["draw"]): r
            for r in _rows(cfg, "select * from main.fct_user_negatives where run_date = ?", [D])}
    assert len(rows) == 8 and rows[("u2", "MEDIUM", 0)]["negative_oversampling"] == [2.0, 1.5, 0.5]


# --------------------------------------------------------------------------- analyst marts


def test_analyst_marts_after_publish(built):
    """Publish recommendations for D-1 and D, then build the analyst marts as of D+1."""
    cfg, _ = built
    before = dict(_query(cfg, "select run_date, count(*) from main.dim_items group by run_date"))
    create_recommendations_table(Path(cfg.paths.warehouse), _csv("recommendations.csv"))
    summary = dbt_build(cfg, D_PLUS_1, selector=ANALYST)
    built_models = {r["name"] for r in summary["results"] if r["resource_type"] == "model"}
    assert {"rec_latest_with_items", "rec_daily_quality", "model_leaderboard"} <= built_models
    assert not built_models & set(INCREMENTAL_MARTS)  # the analyst selector leaves feature marts alone
    assert dict(_query(cfg, "select run_date, count(*) from main.dim_items group by run_date")) == before

    latest = _rows(cfg, "select * from main.rec_latest_with_items order by user_id, rank")
    assert {r["run_date"] for r in latest} == {dt.date(2026, 10, 8)} and len(latest) == 6
    assert (latest[0]["item_id"], latest[0]["title"], latest[0]["genre"], latest[0]["item_is_trending"]) == ("i2", "Song Two", "rock", True)
    assert latest[0]["item_plays_mid"] == 2

    q = {r["run_date"].isoformat(): r for r in _rows(cfg, "select * from main.rec_daily_quality")}
    d = q[D]
    assert (d["n_users"], d["n_recommendations"], d["n_distinct_items"], d["catalog_size"]) == (3, 6, 3, 6)
    assert d["coverage"] == pytest.approx(0.5)
    # counts over the 6 catalog items, ascending: 0 0 0 1 2 3 -> Gini = 2*32/(6*6) - 7/6
    assert d["gini"] == pytest.approx(2 * 32 / 36 - 7 / 6)
    assert d["top_share"] == pytest.approx(3 / 6)  # top ceil(10% of 6) = 1 item (i3, 3 of 6 slots)
    assert d["later_skip_share"] == pytest.approx(1 / 6)  # u2 skipped recommended i3 on D+1
    assert d["next_day_active_users"] == 2 and d["next_day_hit_rate"] == pytest.approx(0.5)  # u1 hit (i2), u2 no
    prev = q["2026-10-07"]
    assert (prev["n_users"], prev["coverage"]) == (1, pytest.approx(2 / 6))
    assert prev["later_skip_share"] == 0.0 and prev["next_day_hit_rate"] == 1.0  # u1 played i1 on D


# --------------------------------------------------------------------------- failures


def _broken_build(tmp_path, mutate):
    cfg = _cfg(tmp_path)
    write_fixture_lake(Path(cfg.paths.lake), mutate_events=mutate, catalog=False)
    create_recommendations_table(Path(cfg.paths.warehouse))
    with pytest.raises(DbtBuildError) as err:
        dbt_build(cfg, D, selector=FEATURES)
    return str(err.value), err.value


def test_broken_inputs_fail_the_named_dbt_tests(tmp_path):
    """A session event without session and a duplicated event id: the build stops naming both tests."""

    def break_events(events):
        events[3]["session_id"] = None  # e04 loses its session
        events[1]["event_id"] = events[0]["event_id"]  # e02 reuses e01's id
        return events

    message, err = _broken_build(tmp_path, break_events)
    assert "not_null_stg_sessionized_events_session_id" in message
    assert "unique_stg_sessionized_events_event_id" in message
    assert "assert_every_clean_event_in_exactly_one_session" in message
    # the reconciliation names the date, the problem and the partition to re-run
    assert "problem=clean event sessionized more than once" in message
    assert "partition_to_rerun=sessionized_events/dt=2026-" in message
    assert "not_null_stg_sessionized_events_user_id" not in message  # only the broken rules fail
    names = {f["name"] for f in err.failures}
    assert "unique_stg_sessionized_events_event_id" in names
    # downstream marts are skipped, not built on bad data
    assert err.result["counts"].get("skipped", 0) > 0
    with duckdb.connect(str(tmp_path / "warehouse" / "encore.duckdb"), read_only=True) as con:
        built_tables = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
    assert not built_tables & {"dim_items", "user_features"}  # both read the sessionized events
    # an item catalog with zero rows is valid input: its staging model and tests pass
    status = {r["name"]: r["status"] for r in err.result["results"]}
    assert status["stg_item_catalog"] == "success"
    assert status["not_null_stg_item_catalog_item_id"] == "pass"
    assert status["unique_combination_of_columns_stg_item_catalog_catalog_date__item_id"] == "pass"


def test_run_date_is_required_and_docs_generate(built):
    cfg, _ = built
    with pytest.raises(ValueError):
        dbt_build(cfg, "2026-13-01")
    docs = dbt_docs(cfg, D)
    catalog = json.loads(Path(docs["catalog_json"]).read_text())
    assert "model.encore.dim_items" in catalog["nodes"]
