"""The CLI's checks around a nightly run: a run that did nothing or skipped the publish fails
naming the cause; one night at a time per state dir; data lands only where asked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from encore.nightly import runner as cli

STATES = [
    {"task_id": "validate_raw", "map_index": "", "state": "success"},
    {"task_id": "train", "map_index": "0", "state": "success"},
    {"task_id": "train", "map_index": "1", "state": "failed"},
    {"task_id": "publish", "map_index": "", "state": "upstream_failed"},
]


def test_task_states_are_read_with_map_indexes():
    output = "some warning line\n" + json.dumps(STATES) + "\n"
    assert cli._task_states(output) == {"validate_raw": "success", "train[0]": "success", "train[1]": "failed",
                                        "publish": "upstream_failed"}
    assert cli._task_states("no json here") == {}


def _fake_states(monkeypatch, states: list[dict] | None, tmp_path: Path):
    log = tmp_path / "states.log"
    log.write_text(json.dumps(states) if states is not None else "Dag run not found")

    def fake_airflow(cfg, *args, log_name=None):
        return (0 if states is not None else 1), log

    monkeypatch.setattr(cli, "_airflow", fake_airflow)


def test_a_run_that_executed_no_task_fails(cfg, monkeypatch, tmp_path):
    _fake_states(monkeypatch, [], tmp_path)
    run_log = tmp_path / "run.log"
    run_log.write_text("all fine\n")
    with pytest.raises(cli.NightFailed, match="2026-10-05: the run executed no task"):
        cli.check_run(cfg, "2026-10-05", 0, run_log)


def test_a_run_that_skipped_publish_fails_naming_the_tasks_and_the_error(cfg, monkeypatch, tmp_path):
    _fake_states(monkeypatch, STATES, tmp_path)
    run_log = tmp_path / "run.log"
    run_log.write_text("x\nAirflowFailException: NoEventsError: no events for 2026-10-05\ny\n")
    with pytest.raises(cli.NightFailed) as err:
        cli.check_run(cfg, "2026-10-05", 1, run_log)
    assert "train[1] failed" in str(err.value) and "publish upstream_failed" in str(err.value)
    assert "no events for 2026-10-05" in str(err.value) and str(run_log) in str(err.value)


def test_a_run_replaced_by_another_dags_test_says_so(cfg, monkeypatch, tmp_path):
    """Another `airflow dags test` for the same date deletes this night's run: the night dies of
    sqlite's FOREIGN KEY error, and the message says what happened instead of only quoting it."""
    _fake_states(monkeypatch, [dict(s, state="running") for s in STATES[:1]], tmp_path)
    run_log = tmp_path / "run.log"
    run_log.write_text("sqlalchemy.exc.IntegrityError: (sqlite3.IntegrityError) FOREIGN KEY constraint failed\n")
    with pytest.raises(cli.NightFailed, match=r"vanished under it .*another `airflow dags test encore_nightly "
                                              r"2026-10-05` replaces the run .*`encore run`"):
        cli.check_run(cfg, "2026-10-05", 1, run_log)


def test_successful_run_passes(cfg, monkeypatch, tmp_path):
    ok = [dict(s, state="success") for s in STATES]
    _fake_states(monkeypatch, ok, tmp_path)
    assert len(cli.check_run(cfg, "2026-10-05", 0, tmp_path / "run.log")) == 4


def test_a_date_before_the_dags_start_date_is_refused_before_airflow_runs(cfg, monkeypatch):
    Path(cfg.landing_path("1998-04-20", "movielens")).mkdir(parents=True)
    monkeypatch.setattr(cli, "_airflow", lambda *a, **k: pytest.fail("airflow must not run"))
    with pytest.raises(cli.NightFailed, match="1997-01-01: before the DAG's start date 1998-04-20"):
        cli.run_dates(cfg, ["1997-01-01"])


def test_a_second_night_in_the_same_state_dir_fails_naming_the_holder(cfg):
    with cli.night_lock(cfg, "dates 2026-10-05..2026-10-05"):
        with pytest.raises(SystemExit, match=r"another nightly run holds .*night.lock \(pid \d+, dates 2026-10-05"):
            with cli.night_lock(cfg, "dates 2026-10-06..2026-10-06"):
                pass
    with cli.night_lock(cfg, "again"):  # released afterwards
        pass


def test_generator_writes_only_into_an_empty_landing_zone(cfg, monkeypatch):
    written = []
    monkeypatch.setattr(cli, "generate", lambda c, overwrite=False: written.append(c.data.source))
    cli.ensure_landed_data(cfg)
    assert written == ["synthetic_music"]
    written.clear()
    Path(cfg.landing_path("1998-04-22", "movielens")).mkdir(parents=True)
    cli.ensure_landed_data(cfg)
    assert written == []
