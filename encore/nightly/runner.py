"""``encore`` command line: generate data, bootstrap history, run / backfill the nightly DAG, summarise.

``make run`` is ``encore run``: it generates the embedded dataset if absent,
ingests the days before the first nightly date (history), then runs the Airflow
DAG ``encore_nightly`` through ``airflow dags test`` for each nightly date and
prints where the results are.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from encore.core import lake
from encore.core.config import EncoreConfig, default_run_dates, load_config

log = logging.getLogger("encore")
REPO_ROOT = Path(__file__).resolve().parents[2]


def airflow_env(cfg: EncoreConfig) -> dict[str, str]:
    env = dict(os.environ)
    env.update(cfg.env())
    env.update(
        {
            "AIRFLOW_HOME": cfg.paths.airflow_home,
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": env.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING"),
        }
    )
    return env


def _airflow(cfg: EncoreConfig, *args: str) -> subprocess.CompletedProcess:
    airflow = Path(sys.executable).with_name("airflow")
    log_dir = Path(cfg.paths.airflow_home) / "cli-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / f"{'_'.join(a.replace('/', '-') for a in args)}.log"
    with open(log_file, "w") as out:
        proc = subprocess.run([str(airflow), *args], env=airflow_env(cfg), stdout=out, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = "".join(log_file.read_text().splitlines(keepends=True)[-40:])
        raise SystemExit(f"airflow {' '.join(args)} failed (exit {proc.returncode}); log: {log_file}\n{tail}")
    return proc


def generate(cfg: EncoreConfig, overwrite: bool = False) -> None:
    from encore.ingest.generator import write_landing

    written = write_landing(cfg, overwrite=overwrite)
    log.info("landing zone %s: %d new events", cfg.paths.landing, written)


def bootstrap_history(cfg: EncoreConfig, before: str) -> None:
    """Ingest every landed day before ``before`` that has no clean partition yet."""
    from encore.ingest.daily import ingest_day

    landed = sorted({p.name[3:] for p in Path(cfg.paths.landing).glob("*/dt=*")})
    done = set(lake.partition_dates(cfg, "events_clean"))
    todo = [d for d in landed if d < before and d not in done]
    for i, day in enumerate(todo, 1):
        summary = ingest_day(cfg, day)
        log.info("history %d/%d %s: %d clean, %d quarantined", i, len(todo), day,
                 summary["clean_rows"], summary["quarantined_rows"])


def run_dates(cfg: EncoreConfig, dates: list[str]) -> dict[str, float]:
    """Run the nightly DAG for each date, in order; return each ``airflow dags test`` wall time in seconds."""
    Path(cfg.paths.airflow_home).mkdir(parents=True, exist_ok=True)
    _airflow(cfg, "db", "migrate")
    seconds = {}
    for day in dates:
        started = time.monotonic()
        log.info("running encore_nightly for %s through Airflow ...", day)
        _airflow(cfg, "dags", "test", "encore_nightly", day)
        seconds[day] = time.monotonic() - started
        log.info("encore_nightly %s succeeded in %.0f s", day, seconds[day])
    return seconds


def print_summary(cfg: EncoreConfig) -> None:
    from encore.core.warehouse import connect

    with connect(cfg, read_only=True) as con:
        rows = con.execute(
            "SELECT run_date, count(*) AS rows, count(DISTINCT user_id) AS users, any_value(model_name) AS model "
            "FROM recommendations GROUP BY run_date ORDER BY run_date"
        ).fetchall()
    print("\nEncore nightly results")
    print(f"  warehouse (DuckDB): {cfg.paths.warehouse}")
    print(f"  lake (Parquet):     {cfg.paths.lake}")
    print(f"  MLflow:             {cfg.paths.mlflow_tracking_uri}")
    print(f"  reports:            {cfg.paths.reports}")
    print("  recommendations per run date:")
    for run_date, n, users, model in rows:
        print(f"    {run_date}: {n} rows for {users} users (model {model})")
    print("\nTry:")
    print(f"  .venv/bin/python -c \"import duckdb; print(duckdb.connect('{cfg.paths.warehouse}', read_only=True)"
          ".sql('select * from recommendations_latest order by user_id, rank limit 10'))\"")


def _dates_between(start: str, end: str) -> list[str]:
    first, last = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    if last < first:
        raise SystemExit(f"backfill: END {end} is before START {start}")
    return [(first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="encore", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="write the embedded synthetic dataset into the landing zone")
    gen.add_argument("--overwrite", action="store_true")
    run = sub.add_parser("run", help="generate if needed, ingest history, run the nightly DAG for dates")
    run.add_argument("--dates", nargs="*", help="logical dates (default: the last 3 days of the dataset)")
    back = sub.add_parser("backfill", help="run the nightly DAG for every date in [start, end], in order")
    back.add_argument("--start", required=True)
    back.add_argument("--end", required=True)
    sub.add_parser("summary", help="print where the results are")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = load_config()
    if args.command == "generate":
        generate(cfg, overwrite=args.overwrite)
    elif args.command in {"run", "backfill"}:
        dates = args.dates or default_run_dates(cfg) if args.command == "run" else _dates_between(args.start, args.end)
        generate(cfg)
        bootstrap_history(cfg, before=min(dates))
        run_dates(cfg, dates)
        print_summary(cfg)
    elif args.command == "summary":
        print_summary(cfg)


if __name__ == "__main__":
    main()
