"""Nightly-DAG benchmark: wall time per task of one ``encore_nightly`` run, at 1x and Nx the events.

``python -m benchmarks.nightly_bench --scales 1 10 --out bench_results/nightly.json`` (``make bench-nightly``);
a quick check on tiny data: ``--scales 1 2 --users-base 100 --days 7``.

For each scale N, in a fresh state dir ``<workdir>/scale_N`` with the default nightly config
except ``data.n_users`` = N x the base (so about N x the events):

1. setup, timed but not part of the nightly: generate the landing data, ingest every day
   before the nightly date (``encore.nightly.runner.bootstrap_history``) and sessionize that history
   (the one-off Spark backfill a first nightly run does; every later night finds it done);
2. the nightly: ``airflow dags test encore_nightly D`` (``encore.nightly.runner.run_dates``) for D = the
   last default run date; its subprocess wall time includes Airflow start-up and DAG parsing;
3. per-task wall time from Airflow's metadata DB: ``task_instance.duration`` of that run
   (the mapped ``train`` per map index, and summed).

Prints a markdown table (seconds per task at each scale, ratio to the smallest scale, the
issue's targets: scale-1 nightly <= 5 min, 10x events <= 6x time, both judged on the
``dags test`` wall time) and writes it all as JSON, with the nightly's peak memory: the summed
RSS of the ``dags test`` process tree (its Spark JVM and dbt included), sampled every 0.5 s
(an upper bound: pages shared by forked processes count once per process).
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pyarrow.dataset as ds

from benchmarks.experiments import save_report
from encore.nightly.runner import bootstrap_history, generate, run_dates
from encore.core.config import DataConfig, EncoreConfig, load_config
from encore.ingest.landing import last_landed_dates

log = logging.getLogger("benchmarks.nightly_bench")

DAG_ID = "encore_nightly"
NIGHTLY_SECONDS_TARGET = 300  # issue #8: the default nightly in <= 5 min on 2 cores
TIME_PER_EVENTS_TARGET = 0.6  # issue #8: 10x the events in <= 6x the time
SESSIONIZE_HISTORY = (
    "import sys; from encore.core.config import load_config; from spark_jobs.pipeline import backfill_sessionized; "
    "backfill_sessionized(load_config(), sys.argv[1])"
)


def airflow_db(cfg: EncoreConfig) -> Path:
    """The sqlite file of Airflow's metadata DB, from ``[database] sql_alchemy_conn`` in airflow.cfg."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(Path(cfg.paths.airflow_home) / "airflow.cfg")
    conn = parser.get("database", "sql_alchemy_conn")
    if not conn.startswith("sqlite:///"):
        raise SystemExit(f"bench_nightly reads a sqlite metadata DB; airflow.cfg has {conn}")
    return Path(conn.removeprefix("sqlite:///"))


def read_task_instances(db: Path, dag_id: str, logical_date: str) -> list[dict]:
    """Task instances of the latest run of ``dag_id`` for ``logical_date`` (YYYY-MM-DD), in start order."""
    query = """
        SELECT ti.task_id, ti.map_index, ti.rendered_map_index, ti.try_number, ti.duration
        FROM task_instance ti JOIN dag_run dr ON dr.dag_id = ti.dag_id AND dr.run_id = ti.run_id
        WHERE dr.id = (SELECT max(id) FROM dag_run WHERE dag_id = ? AND date(logical_date) = ?)
        ORDER BY ti.start_date IS NULL, ti.start_date, ti.map_index
    """
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        con.row_factory = sqlite3.Row
        return [dict(row) for row in con.execute(query, (dag_id, logical_date))]


def task_seconds(rows: list[dict]) -> tuple[dict[str, float], dict[str, float]]:
    """(seconds per task, mapped as ``task[map]``; seconds per mapped task summed over its maps).

    Tasks that never ran (no duration) are left out.
    """
    per_task: dict[str, float] = {}
    mapped: dict[str, float] = {}
    for row in rows:
        if row["duration"] is None:
            continue
        if row["map_index"] < 0:
            per_task[row["task_id"]] = round(row["duration"], 2)
            continue
        label = row["rendered_map_index"] or row["map_index"]
        per_task[f"{row['task_id']}[{label}]"] = round(row["duration"], 2)
        mapped[row["task_id"]] = round(mapped.get(row["task_id"], 0.0) + row["duration"], 2)
    return per_task, mapped


def check_targets(results: list[dict]) -> dict:
    """The issue's targets on the ``dags test`` wall time; ratios are to the smallest scale."""
    base = min(results, key=lambda r: r["scale"])
    scale_one = [r for r in results if r["scale"] == 1]
    targets: dict = {"nightly_seconds_target": NIGHTLY_SECONDS_TARGET, "base_scale": base["scale"], "ratios": {}}
    if scale_one:
        targets["scale_1_nightly_met"] = scale_one[0]["nightly_wall_seconds"] <= NIGHTLY_SECONDS_TARGET
    for r in results:
        if r is base:
            continue
        time_ratio = r["nightly_wall_seconds"] / base["nightly_wall_seconds"]
        allowed = TIME_PER_EVENTS_TARGET * r["scale"] / base["scale"]
        targets["ratios"][r["scale"]] = {
            "events_ratio": round(r["events_in_lake"] / base["events_in_lake"], 2),
            "time_ratio": round(time_ratio, 2),
            "time_ratio_target": round(allowed, 2),
            "met": time_ratio <= allowed,
        }
    return targets


def markdown(results: list[dict], targets: dict) -> str:
    """Rows: tasks, the nightly totals, setup, events, memory, targets; columns: seconds per scale, ratios."""
    results = sorted(results, key=lambda r: r["scale"])
    base, others = results[0], results[1:]

    def line(label: str, per_scale: list[str], per_ratio: list[str]) -> str:
        return "| " + " | ".join([label, *per_scale, *per_ratio]) + " |"

    def measured(label: str, values: list, fmt: str = "{:,.1f}") -> str:
        ratios = [f"{v / values[0]:.2f}" if values[0] and v is not None else "" for v in values[1:]]
        return line(label, [fmt.format(v) if v is not None else "" for v in values], ratios)

    lines = [
        line("", [f"{r['scale']}x s" for r in results], [f"{r['scale']}x / {base['scale']}x" for r in others]),
        "|---" + "|---:" * (len(results) + len(others)) + "|",
    ]
    for task in dict.fromkeys(t for r in results for t in r["task_seconds"]):
        lines.append(measured(task, [r["task_seconds"].get(task) for r in results]))
    for task in dict.fromkeys(t for r in results for t in r["mapped_task_seconds"]):
        lines.append(measured(f"{task} (sum of maps)", [r["mapped_task_seconds"].get(task) for r in results]))
    lines.append(measured("**nightly: sum of task durations**", [r["task_seconds_total"] for r in results]))
    lines.append(measured("**nightly: `airflow dags test` wall**", [r["nightly_wall_seconds"] for r in results]))
    for step in base["setup_seconds"]:
        lines.append(measured(f"setup: {step}", [r["setup_seconds"][step] for r in results]))
    lines.append(measured("raw events on the nightly date", [r["events_on_run_date"] for r in results], "{:,}"))
    lines.append(measured("clean events in the lake (history + date)", [r["events_in_lake"] for r in results], "{:,}"))
    lines.append(measured("nightly peak RSS MB (process tree)", [r["peak_nightly_rss_mb"] for r in results], "{:,}"))
    if "scale_1_nightly_met" in targets:
        verdict = "met" if targets["scale_1_nightly_met"] else "not met"
        lines.append(line(f"target: 1x wall <= {NIGHTLY_SECONDS_TARGET} s",
                          [verdict if r["scale"] == 1 else "" for r in results], [""] * len(others)))
    if others:
        lines.append(line(
            f"target: wall ratio <= {TIME_PER_EVENTS_TARGET} x scale ratio", [""] * len(results),
            [f"{t['time_ratio']:.2f} <= {t['time_ratio_target']:.1f}: {'met' if t['met'] else 'not met'}"
             for t in targets["ratios"].values()],
        ))
    models = ", ".join(f"[{i}] {m}" for i, m in enumerate(base["models"]))
    lines.append(f"\nMapped `train` map index -> model: {models}.")
    return "\n".join(lines)


def use_scale_environment(home: Path, n_users: int, n_days: int | None, settings: dict[str, str]) -> EncoreConfig:
    """Point this process's environment (inherited by Airflow and its tasks) at one scale; return its config.

    The caller's ENCORE* settings are dropped, so every scale runs the default nightly config
    plus ``settings`` (``{"TRAINING__EMA_EPOCHS": "0"}``: ENCORE__ variables without the prefix).
    """
    for key in [k for k in os.environ if k.startswith("ENCORE")]:
        del os.environ[key]
    os.environ.update({f"ENCORE__{name}": value for name, value in settings.items()})
    os.environ["ENCORE_HOME"] = str(home)
    os.environ["ENCORE__DATA__N_USERS"] = str(n_users)
    if n_days:
        os.environ["ENCORE__DATA__N_DAYS"] = str(n_days)
    return load_config(os.environ)


def sessionize_history(run_date: str) -> None:
    """The Spark history backfill, in its own process so its JVM is gone before the nightly starts."""
    subprocess.run([sys.executable, "-c", SESSIONIZE_HISTORY, run_date], check=True)


def timed(step: str, func, *args) -> float:
    log.info("%s ...", step)
    started = time.monotonic()
    func(*args)
    seconds = round(time.monotonic() - started, 2)
    log.info("%s done in %.1f s", step, seconds)
    return seconds


def count_events(path: str) -> int:
    return ds.dataset(path, format="parquet").count_rows()


class PeakTreeRss:
    """Peak summed RSS of this process's descendants while in the ``with`` block, sampled every 0.5 s."""

    def __enter__(self) -> PeakTreeRss:
        self.peak_bytes, self._stop = 0, threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._sampler.join()

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.wait(0.5):
            rss = 0
            for child in me.children(recursive=True):
                with contextlib.suppress(psutil.Error):  # it may have exited since it was listed
                    rss += child.memory_info().rss
            self.peak_bytes = max(self.peak_bytes, rss)


def bench_scale(scale: int, workdir: Path, users_base: int, n_days: int | None, settings: dict[str, str]) -> dict:
    home = workdir / f"scale_{scale}"
    shutil.rmtree(home, ignore_errors=True)
    cfg = use_scale_environment(home, users_base * scale, n_days, settings)
    generated = timed("generate landing data", generate, cfg)
    run_date = last_landed_dates(cfg)[-1]  # the data's own last day: known once it has landed
    log.info("scale %dx: %d users, %d days, nightly date %s, state in %s",
             scale, cfg.data.n_users, cfg.data.n_days, run_date, home)
    setup = {
        "generate": generated,
        "ingest history": timed("ingest history", bootstrap_history, cfg, run_date),
        "sessionize history": timed("sessionize history (Spark)", sessionize_history, run_date),
    }
    log.info("nightly run %s through airflow dags test ...", run_date)
    with PeakTreeRss() as memory:
        wall = round(run_dates(cfg, [run_date])[run_date], 2)
    rows = read_task_instances(airflow_db(cfg), DAG_ID, run_date)
    per_task, mapped = task_seconds(rows)
    retried = [r["task_id"] for r in rows if r["try_number"] > 1]
    if retried:
        log.warning("tasks retried (duration is of the last try): %s", retried)
    result = {
        "scale": scale,
        "n_users": cfg.data.n_users,
        "n_days": cfg.data.n_days,
        "run_date": run_date,
        "home": str(home),
        "models": list(cfg.training.models),
        "setup_seconds": setup,
        "nightly_wall_seconds": wall,
        "task_seconds": per_task,
        "mapped_task_seconds": mapped,
        "task_seconds_total": round(sum(per_task.values()), 2),
        "retried_tasks": retried,
        "events_on_run_date": count_events(cfg.landing_path(run_date)),
        "events_in_lake": count_events(cfg.lake_path("events_clean")),
        "peak_nightly_rss_mb": round(memory.peak_bytes / 2**20),
    }
    log.info("scale %dx: nightly %.1f s wall, %.1f s in tasks", scale, wall, result["task_seconds_total"])
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 10], help="multiples of the base users")
    parser.add_argument("--out", default="bench_results/nightly.json")
    parser.add_argument("--workdir", default="bench_results/nightly_work", help="scratch state, one dir per scale")
    parser.add_argument("--users-base", type=int, default=DataConfig().n_users, help="data.n_users at scale 1")
    parser.add_argument("--days", type=int, help="data.n_days (default: the config's)")
    parser.add_argument("--setting", action="append", default=[], metavar="SECTION__KEY=VALUE",
                        help="a config override for every scale, as its ENCORE__ variable without the prefix "
                             "(e.g. TRAINING__EMA_EPOCHS=0); repeatable")
    args = parser.parse_args(argv)
    settings = dict(item.split("=", 1) for item in args.setting if "=" in item)
    if len(settings) != len(args.setting) or not all("__" in name for name in settings):
        parser.error(f"--setting takes SECTION__KEY=VALUE, got {args.setting}")

    workdir = Path(args.workdir).resolve()
    results = [bench_scale(scale, workdir, args.users_base, args.days, settings) for scale in sorted(set(args.scales))]
    targets = check_targets(results)
    report = {"cpu_count": os.cpu_count(), "users_base": args.users_base, "settings": settings, "scales": results,
              "targets": targets}
    save_report(report, args.out, markdown(results, targets))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    main()
