"""End to end: the real DAG through ``airflow dags test`` on a small generated dataset.

Backfills three consecutive dates (in order), then re-runs the middle one and
checks that the published table is unchanged, that the champion carried over,
and that the run report exists.
"""

from __future__ import annotations

import duckdb
import pytest

from benchmarks.chaos import SMALL  # the small night the fault matrix runs too
from encore.core import lake
from encore.nightly.runner import bootstrap_history, generate, run_dates
from encore.core.config import load_config

pytestmark = pytest.mark.slow

DATES = ["2026-10-05", "2026-10-06", "2026-10-07"]
COLUMNS = "run_date, user_id, rank, item_id, score, soft_label, p_skip, predicted_completion, model_name, model_version"


@pytest.fixture(scope="module")
def nightly_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("e2e")
    patch = pytest.MonkeyPatch()
    patch.setenv("ENCORE_HOME", str(home))
    for key, value in SMALL.items():
        patch.setenv(key, value)
    cfg = load_config()
    generate(cfg)
    bootstrap_history(cfg, before=DATES[0])
    run_dates(cfg, DATES)
    yield cfg
    patch.undo()


def _published(cfg, run_date=None):
    with duckdb.connect(cfg.paths.warehouse, read_only=True) as con:
        where = f"WHERE run_date = '{run_date}'" if run_date else ""
        return con.execute(f"SELECT {COLUMNS} FROM recommendations {where} ORDER BY run_date, user_id, rank").fetchall()


def test_three_dates_publish_k_rows_per_active_user(nightly_home):
    cfg = nightly_home
    for day in DATES:
        rows = _published(cfg, day)
        users = set(lake.read_partition(cfg, "sequences", day).column("user_id").to_pylist())
        assert len(rows) == 5 * len(users) > 0
        assert {r[1] for r in rows} == users
    with duckdb.connect(cfg.paths.warehouse, read_only=True) as con:
        latest = con.execute("SELECT DISTINCT run_date::VARCHAR FROM recommendations_latest").fetchall()
        quality = con.execute("SELECT count(*) FROM rec_daily_quality").fetchone()[0]
    assert latest == [(DATES[-1],)]
    assert quality == 3


def test_dates_ran_in_order_and_champion_carried_over(nightly_home):
    history = lake.read_table(nightly_home, "promotions").to_pylist()
    assert [h["run_date"] for h in history] == DATES
    assert history[0]["promoted"] and history[0]["champion_version"] is None
    for before, after in zip(history, history[1:]):
        champion_after_before = before["challenger_version"] if before["promoted"] else before["champion_version"]
        assert after["champion_version"] == champion_after_before


def test_rerun_of_a_date_leaves_the_table_identical(nightly_home):
    cfg = nightly_home
    before = _published(cfg)
    run_dates(cfg, [DATES[1]])
    assert _published(cfg) == before


def test_report_written(nightly_home):
    from pathlib import Path

    page = Path(nightly_home.paths.reports) / DATES[-1] / "report.html"
    text = page.read_text()
    assert "Champion history" in text and "data_quality.png" in text
