"""Real data on its own calendar, through the whole nightly DAG (issue #16).

* MovieLens-100k (the real file, fetched once into the dataset cache): landed with
  ``encore ingest --source movielens``, then ``encore run`` with no dates runs the data's own
  last three landed days (1998-04-20..22).
* A Spotify-MSSD-format log written here in the public column layout, re-saved with
  day-first dates (``15/07/2018``), landed with ``--date-format %d/%m/%Y``.

Both check: recommendations published for those dates, K rows per active user, nothing
synthetic anywhere in the landing zone or the lake, raw = clean + quarantined per day.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import duckdb
import numpy as np
import pytest

from encore.core import lake
from encore.core.config import load_config
from encore import cli
from encore.ingest.adapters import MSSD_COLUMNS

pytestmark = pytest.mark.slow

K = 5
TRAINING = {  # small models: this checks the flow on real data, not model quality
    "ENCORE__TRAINING__EPOCHS": "1",
    "ENCORE__TRAINING__HIDDEN": "32",
    "ENCORE__TRAINING__HEADS": "2",
    "ENCORE__TRAINING__N_SAMPLED": "100",
    "ENCORE__TRAINING__MODELS": "sasrec,most_pop",
    "ENCORE__INFERENCE__K": str(K),
    "ENCORE__PHNS__N_NEGATIVES": "10",
}


def _home(tmp_path_factory, name: str, extra: dict[str, str]):
    home = tmp_path_factory.mktemp(name)
    patch = pytest.MonkeyPatch()
    patch.setenv("ENCORE_HOME", str(home))
    for key, value in {**TRAINING, **extra}.items():
        patch.setenv(key, value)
    return patch, load_config()


def _published(cfg) -> dict[str, list[tuple]]:
    with duckdb.connect(cfg.paths.warehouse, read_only=True) as con:
        rows = con.execute("SELECT run_date::VARCHAR, user_id, rank FROM recommendations").fetchall()
    by_date: dict[str, list[tuple]] = {}
    for day, user, rank in rows:
        by_date.setdefault(day, []).append((user, rank))
    return by_date


def _assert_night_outputs(cfg, dates: list[str], source: str) -> None:
    published = _published(cfg)
    assert sorted(published) == dates
    for day in dates:
        users = set(lake.read_partition(cfg, "sequences", day).column("user_id").to_pylist())
        rows = published[day]
        assert len(rows) == K * len(users) > 0
        assert {u for u, _ in rows} == users and {r for _, r in rows} == set(range(1, K + 1))
    assert sorted(p.name for p in Path(cfg.paths.landing).iterdir()) == [source]  # no synthetic data landed
    for day in lake.partition_dates(cfg, "ingest_reports"):
        (report,) = lake.read_partition(cfg, "ingest_reports", day).column("summary_json").to_pylist()
        summary = json.loads(report)
        assert summary["raw_rows"] == summary["clean_rows"] + summary["quarantined_rows"]
    sources = set(lake.read_table(cfg, "events_clean").column("source").to_pylist())
    assert sources == {source}
    # every model run names the data it read, for MLflow and the analysts' leaderboard
    assert set(lake.read_table(cfg, "model_runs").column("dataset").to_pylist()) == {source}


@pytest.fixture(scope="module")
def movielens(tmp_path_factory):
    from encore.ingest.public_datasets import ml100k_path

    # the default 90-day lookback: the first night ingests 90 days of history (the README's
    # real-data row uses 400 to see every user's whole history; here only the flow is checked)
    patch, cfg = _home(tmp_path_factory, "ml100k", {})
    with pytest.raises(SystemExit) as landed:
        cli.main(["ingest", "--source", "movielens", "--input", str(ml100k_path())])
    assert landed.value.code == 0
    cli.main(["run"])  # no dates: the data's own last three landed days
    yield cfg
    patch.undo()


def test_movielens_publishes_its_own_last_three_days(movielens):
    _assert_night_outputs(movielens, ["1998-04-20", "1998-04-21", "1998-04-22"], "movielens")
    history = lake.read_table(movielens, "promotions").to_pylist()
    assert [h["run_date"] for h in history] == ["1998-04-20", "1998-04-21", "1998-04-22"]
    assert history[0]["promoted"]


def _mssd_log(path: Path, days: list[str], sessions_per_day: int = 60, seed: int = 0) -> None:
    """An MSSD training log in the public column layout, dates re-saved day first (15/07/2018)."""
    rng = np.random.default_rng(seed)
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(MSSD_COLUMNS)
        for day in days:
            year, month, dom = day.split("-")
            for s in range(sessions_per_day):
                length = int(rng.integers(10, 21))
                start = int(rng.integers(0, 60))
                for position in range(1, length + 1):
                    track = (start + position * 3 + int(rng.integers(0, 3))) % 80
                    skip = rng.random() < 0.2
                    out.writerow([f"{day}_{s:04d}", position, length, f"t_{track:03d}", str(skip).lower(),
                                  str(skip).lower(), str(skip).lower(), str(not skip).lower(), 0, 1, 0, 0, 0, 0,
                                  "false", int(rng.integers(6, 23)), f"{dom}/{month}/{year}", "true",
                                  "editorial_playlist", "trackdone", "trackdone"])


@pytest.fixture(scope="module")
def mssd(tmp_path_factory):
    patch, cfg = _home(tmp_path_factory, "mssd", {})
    log = Path(cfg.paths.home) / "log_0_20180714_000000000000.csv"
    log.parent.mkdir(parents=True, exist_ok=True)
    _mssd_log(log, ["2018-07-14", "2018-07-15"])
    with pytest.raises(SystemExit) as landed:
        cli.main(["ingest", "--source", "mssd", "--input", str(log), "--date-format", "%d/%m/%Y"])
    assert landed.value.code == 0
    cli.main(["run", "--dates", "2018-07-15"])
    yield cfg
    patch.undo()


def test_mssd_with_resaved_dates_publishes_its_own_day(mssd):
    _assert_night_outputs(mssd, ["2018-07-15"], "mssd")
    assert lake.partition_dates(mssd, "events_clean") == ["2018-07-14", "2018-07-15"]
