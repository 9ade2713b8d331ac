"""The pure parts of the nightly benchmark: Airflow task_instance rows -> per-task seconds, ratios, targets."""

from __future__ import annotations

import sqlite3

import pytest

from benchmarks.nightly_bench import check_targets, markdown, read_task_instances, task_seconds

RUN = "manual__2026-11-23T10:44:43+00:00"
OLDER_RUN = "manual__2026-11-22T09:00:00+00:00"  # an earlier run of the same date: ignored
OTHER_DATE = "manual__2026-11-23T11:00:00+00:00"


@pytest.fixture
def airflow_db(tmp_path):
    """A metadata DB with the columns the benchmark reads (names as in Airflow 3.3)."""
    db = tmp_path / "airflow.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE dag_run (id INTEGER, dag_id TEXT, run_id TEXT, logical_date TIMESTAMP)")
        con.execute(
            "CREATE TABLE task_instance (task_id TEXT, dag_id TEXT, run_id TEXT, map_index INTEGER, "
            "rendered_map_index TEXT, start_date TIMESTAMP, end_date TIMESTAMP, duration FLOAT, state TEXT, "
            "try_number INTEGER)"
        )
        con.executemany("INSERT INTO dag_run VALUES (?, 'encore_nightly', ?, ?)", [
            (1, OLDER_RUN, "2026-10-30 00:00:00.000000"),
            (2, RUN, "2026-10-30 00:00:00.000000"),
            (3, OTHER_DATE, "2026-10-29 00:00:00.000000"),
        ])
        con.executemany("INSERT INTO task_instance VALUES (?, 'encore_nightly', ?, ?, ?, ?, NULL, ?, ?, ?)", [
            ("spark_sessionize_and_pools", RUN, -1, None, "2026-11-23 10:44:56", 35.5, "success", 1),
            ("validate_raw", RUN, -1, None, "2026-11-23 10:44:44", 12.0, "success", 1),
            ("train", RUN, 1, None, "2026-11-23 10:46:49", 40.25, "success", 1),
            ("train", RUN, 0, "sasrec", "2026-11-23 10:45:41", 60.0, "success", 2),
            ("report", RUN, -1, None, None, None, None, 0),  # never ran
            ("validate_raw", OLDER_RUN, -1, None, "2026-11-22 09:00:01", 99.0, "success", 1),
            ("validate_raw", OTHER_DATE, -1, None, "2026-11-23 11:00:01", 77.0, "success", 1),
        ])
    return db


def test_task_instances_of_the_latest_run_of_the_date_become_seconds_per_task(airflow_db):
    rows = read_task_instances(airflow_db, "encore_nightly", "2026-10-30")
    per_task, mapped = task_seconds(rows)
    assert list(per_task.items()) == [  # in start order; mapped by rendered name, else map index
        ("validate_raw", 12.0), ("spark_sessionize_and_pools", 35.5), ("train[sasrec]", 60.0), ("train[1]", 40.25),
    ]
    assert mapped == {"train": 100.25}
    assert [r["task_id"] for r in rows if r["try_number"] > 1] == ["train"]


def _result(scale, wall, events, tasks):
    return {
        "scale": scale, "models": ["sasrec"], "nightly_wall_seconds": wall, "events_in_lake": events,
        "events_on_run_date": events // 10, "task_seconds": tasks, "mapped_task_seconds": {},
        "task_seconds_total": sum(tasks.values()), "setup_seconds": {"generate": 1.0}, "peak_nightly_rss_mb": 900,
    }


def test_ratios_and_targets_are_judged_on_the_wall_time():
    results = [
        _result(10, wall=1500.0, events=1_000_000, tasks={"validate_raw": 40.0}),
        _result(1, wall=250.0, events=100_000, tasks={"validate_raw": 10.0}),
    ]
    targets = check_targets(results)
    assert targets["base_scale"] == 1 and targets["scale_1_nightly_met"] is True
    assert targets["ratios"] == {10: {"events_ratio": 10.0, "time_ratio": 6.0, "time_ratio_target": 6.0, "met": True}}

    results[0]["nightly_wall_seconds"] = 1501.0
    results[1]["nightly_wall_seconds"] = 301.0  # 4.99x, but 1x over 5 min
    targets = check_targets(results)
    assert targets["scale_1_nightly_met"] is False and targets["ratios"][10]["met"] is True

    table = markdown(results, targets)
    assert "| validate_raw | 10.0 | 40.0 | 4.00 |" in table
    assert "| target: 1x wall <= 300 s | not met |  |  |" in table
    assert "4.99 <= 6.0: met" in table


def test_each_scale_runs_the_default_config_plus_the_given_settings_only(tmp_path, monkeypatch):
    import os

    from benchmarks.nightly_bench import use_scale_environment

    monkeypatch.setattr(os, "environ", {**os.environ, "ENCORE__TRAINING__EPOCHS": "2"})  # a copy it may change
    # the caller's own settings (epochs 2) are dropped
    cfg = use_scale_environment(tmp_path / "scale_1", 40, 5, {"TRAINING__EMA_EPOCHS": "0"})
    assert (cfg.data.n_users, cfg.data.n_days, cfg.training.ema_epochs) == (40, 5, 0)
    assert cfg.training.epochs == 20 and cfg.home == tmp_path / "scale_1"
