"""Running nights from the command line: ``encore run`` / ``backfill`` (``encore.cli``).

``run_nights`` writes the embedded synthetic dataset only when the landing zone is empty,
ingests the days before the first nightly date (history), then runs the Airflow DAG
``encore_nightly`` through ``airflow dags test`` for each nightly date (default: the data's
own last three landed days) under the state dir's lock, checks that every task of each run
succeeded, and prints where the results are.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from encore.core import lake
from encore.core.config import EncoreConfig

log = logging.getLogger("encore")
REPO_ROOT = Path(__file__).resolve().parents[2]


def airflow_env(cfg: EncoreConfig) -> dict[str, str]:
    """The environment of the Airflow processes a night runs in: the whole config, Airflow's home
    and DAG folder, and temp files under the state dir (``paths.tmp``, emptied before each run)."""
    env = dict(os.environ)
    env.update(cfg.env())
    Path(cfg.paths.tmp).mkdir(parents=True, exist_ok=True)
    env.update(
        {
            "TMPDIR": cfg.paths.tmp,
            "AIRFLOW_HOME": cfg.paths.airflow_home,
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": env.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING"),
        }
    )
    return env


class NightFailed(SystemExit):
    """A nightly run did not publish: the message names the cause and the log."""


# what `airflow dags test` dies of when another `dags test` for the same date deletes its run
RUN_REPLACED = "FOREIGN KEY constraint failed"


def _airflow(cfg: EncoreConfig, *args: str, log_name: str | None = None) -> tuple[int, Path]:
    """Run an ``airflow`` command with Encore's Airflow environment; (exit code, log file)."""
    airflow = Path(sys.executable).with_name("airflow")
    log_dir = Path(cfg.paths.airflow_home) / "cli-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / f"{log_name or '_'.join(a.replace('/', '-') for a in args)}.log"
    with open(log_file, "w") as out:
        proc = subprocess.run([str(airflow), *args], env=airflow_env(cfg), stdout=out, stderr=subprocess.STDOUT)
    return proc.returncode, log_file


def _airflow_ok(cfg: EncoreConfig, *args: str) -> Path:
    code, log_file = _airflow(cfg, *args)
    if code != 0:
        tail = "".join(log_file.read_text().splitlines(keepends=True)[-40:])
        raise SystemExit(f"airflow {' '.join(args)} failed (exit {code}); log: {log_file}\n{tail}")
    return log_file


def generate(cfg: EncoreConfig, overwrite: bool = False) -> None:
    from encore.ingest.generator import write_landing

    written = write_landing(cfg, overwrite=overwrite)
    log.info("landing zone %s: %d new events", cfg.paths.landing, written)


def ensure_landed_data(cfg: EncoreConfig) -> None:
    """The embedded default: an empty landing zone gets the synthetic dataset. A landing zone
    that holds any source is never written to."""
    from encore.ingest.landing import landed_sources

    if landed_sources(cfg):
        return
    log.info("landing zone %s is empty: writing the embedded synthetic dataset (%s)", cfg.paths.landing,
             cfg.data.source)
    generate(cfg)


def bootstrap_history(cfg: EncoreConfig, before: str) -> None:
    """Ingest the landed days of the lookback window before ``before`` (what the first night's
    sessions and sequences read) that have no clean partition yet."""
    from encore.ingest.daily import ingest_day
    from encore.ingest.landing import landed_dates

    since = (dt.date.fromisoformat(before) - dt.timedelta(days=cfg.sessions.lookback_days)).isoformat()
    done = set(lake.partition_dates(cfg, "events_clean"))
    todo = [d for d in landed_dates(cfg) if since <= d < before and d not in done]
    for i, day in enumerate(todo, 1):
        summary = ingest_day(cfg, day)
        log.info("history %d/%d %s: %d clean, %d quarantined", i, len(todo), day,
                 summary["clean_rows"], summary["quarantined_rows"])


@contextlib.contextmanager
def night_lock(cfg: EncoreConfig, what: str):
    """One nightly run at a time per state directory: a second ``encore run`` fails at once,
    naming the holder, instead of racing the first on the same partitions and metadata."""
    path = Path(cfg.paths.home) / "night.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise SystemExit(f"another nightly run holds {path} ({handle.read().strip() or 'holder unknown'}); "
                             "wait for it or stop it") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}, {what}, since {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M:%S} UTC\n")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)


def clear_scratch(cfg: EncoreConfig) -> None:
    """Empty ``paths.tmp`` (Spark's local dirs, temp files): what a killed night left there. Only
    under the night lock, when no night of this state dir is running."""
    scratch = Path(cfg.paths.tmp)
    if scratch.is_dir():
        for entry in scratch.iterdir():
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def run_dates(cfg: EncoreConfig, dates: list[str], params: dict | None = None) -> dict[str, float]:
    """Run the nightly DAG for each date, in order, and check each run published; return each
    run's wall time in seconds. ``params``: DAG params for these runs (k, models, phns_mix)."""
    from encore.nightly.stages import dag_start_date

    Path(cfg.paths.airflow_home).mkdir(parents=True, exist_ok=True)
    start = dag_start_date(cfg)
    early = [day for day in dates if dt.date.fromisoformat(day) < start]
    if early:
        raise NightFailed(f"{', '.join(early)}: before the DAG's start date {start} (schedule.start_date, or the "
                          "earliest landed day); Airflow would create the run and execute no task")
    _airflow_ok(cfg, "db", "migrate")
    seconds = {}
    for day in dates:
        started = time.monotonic()
        log.info("running encore_nightly for %s through Airflow ...", day)
        conf = ["-c", json.dumps(params)] if params else []
        code, log_file = _airflow(cfg, "dags", "test", "encore_nightly", day, *conf, log_name=f"dags_test_{day}")
        check_run(cfg, day, code, log_file)
        seconds[day] = time.monotonic() - started
        log.info("encore_nightly %s published in %.0f s", day, seconds[day])
    return seconds


def check_run(cfg: EncoreConfig, day: str, exit_code: int, log_file: Path) -> dict[str, str]:
    """The task states of the run for ``day``; fails unless every task succeeded (a run that
    executed nothing, skipped the publish or failed a task names that)."""
    code, states_log = _airflow(cfg, "tasks", "states-for-dag-run", "encore_nightly", day, "-o", "json",
                                log_name=f"states_{day}")
    states = _task_states(states_log.read_text()) if code == 0 else {}
    bad = {task: state for task, state in states.items() if state != "success"}
    if exit_code == 0 and states and not bad:
        return states
    if not states:
        cause = "the run executed no task" if exit_code == 0 else "the run did not start"
    else:
        cause = "tasks not successful: " + ", ".join(f"{t} {s}" for t, s in sorted(bad.items()))
    if RUN_REPLACED in log_file.read_text(errors="replace"):
        cause += (f"; Airflow's record of this run vanished under it ({RUN_REPLACED}): another `airflow dags test "
                  f"encore_nightly {day}` replaces the run it finds for its date, and that run carries on alone. "
                  "Start nights with `encore run`, which lets one night at a time use the state dir")
    raise NightFailed(f"encore_nightly {day}: {cause}\n{_failure_lines(log_file)}\nlog: {log_file}")



def _task_states(output: str) -> dict[str, str]:
    """{task_id (with map index): state} from ``airflow tasks states-for-dag-run -o json``."""
    start = output.find("[")
    rows = json.loads(output[start:output.rindex("]") + 1]) if start >= 0 else []
    states = {}
    for row in rows:
        index = str(row.get("map_index") or "")
        name = row["task_id"] + (f"[{index}]" if index not in ("", "-1") else "")
        states[name] = str(row.get("state"))
    return states


def _failure_lines(log_file: Path, limit: int = 12) -> str:
    """The lines of a run's log that say why it failed (exceptions, failed tasks)."""
    keys = ("Error", "Exception", "failed", "FAILED", "Traceback")
    lines = [line.rstrip() for line in log_file.read_text(errors="replace").splitlines() if any(k in line for k in keys)]
    return "\n".join(lines[-limit:]) if lines else "".join(log_file.read_text().splitlines(keepends=True)[-20:])


def print_summary(cfg: EncoreConfig) -> None:
    from encore.core.warehouse import analyst_path, query

    rows = query(cfg, "SELECT run_date, count(*) AS n, count(DISTINCT user_id) AS users, min(model_name) AS model "
                      "FROM recommendations GROUP BY run_date ORDER BY run_date").to_pylist()
    print("\nEncore nightly results")
    if cfg.deploy.warehouse == "duckdb":
        print(f"  warehouse (DuckDB): {cfg.paths.warehouse} (the night's file)")
        print(f"  for analysts:       {analyst_path(cfg)} (a copy replaced atomically after each night)")
    else:
        print(f"  warehouse (Postgres): {cfg.deploy.host}:{cfg.deploy.pg_port}/{cfg.deploy.pg_database}")
    print(f"  lake (Parquet):     {cfg.paths.lake}")
    print(f"  MLflow:             {cfg.paths.mlflow_tracking_uri}")
    print(f"  reports:            {cfg.paths.reports}")
    print("  recommendations per run date:")
    for row in rows:
        print(f"    {row['run_date']}: {row['n']} rows for {row['users']} users (model {row['model']})")
    if cfg.deploy.warehouse == "duckdb":
        print("\nTry:")
        print(f"  .venv/bin/python -c \"import duckdb; print(duckdb.connect('{analyst_path(cfg)}', read_only=True)"
              ".sql('select * from recommendations_latest order by user_id, rank limit 10'))\"")


def dates_between(start: str, end: str) -> list[str]:
    first, last = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    if last < first:
        raise SystemExit(f"backfill: END {end} is before START {start}")
    return [(first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def run_nights(cfg: EncoreConfig, dates: list[str] | None, params: dict | None = None) -> None:
    """``encore run`` / ``backfill``: data in place, history ingested, each night run and checked."""
    from encore.ingest.landing import last_landed_dates

    ensure_landed_data(cfg)
    dates = dates or last_landed_dates(cfg)
    if not dates:
        raise SystemExit(f"nothing landed under {cfg.paths.landing} for the sources {list(cfg.ingest.sources) or 'all'}")
    for day in dates:
        dt.date.fromisoformat(day)
    with night_lock(cfg, f"dates {dates[0]}..{dates[-1]}"):
        clear_scratch(cfg)
        bootstrap_history(cfg, before=min(dates))
        run_dates(cfg, dates, params)
    print_summary(cfg)
