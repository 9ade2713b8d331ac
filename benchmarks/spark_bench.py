"""Spark (local[2]) vs DuckDB on the nightly Spark work: sessionize + label, sequences, PHNS pools.

``python -m benchmarks.spark_bench --events 1000000 10000000 --out bench_results/spark.json [--profile DIR] [--repeats N]``
``python -m benchmarks.spark_bench --events 10000000 --cluster 1 2`` (scaling over standalone workers)

For each size: generate synthetic clean events (vectorised numpy, written chunk by chunk
so memory stays bounded), then run each engine in its own subprocess while sampling the
RSS of that process tree (the JVM included). Prints a markdown table, writes JSON.
``--profile DIR`` also records the Spark JVM with the JDK Flight Recorder (one
``spark-<events>.jfr`` per size in DIR) and reports its CPU samples by operator
(``benchmarks.jvm_profile``); the recording costs a little time, so profile runs are
not the ones to quote for speed. ``--repeats N`` runs each engine's job N times in its
process and also reports the fastest run after the first (``warm``): for Spark, the time a
warm JVM (a long-lived driver or cluster) spends, without start-up and JIT warm-up.

``--local-cores C...`` runs Spark in-process on ``local[C]`` for each C (default 2);
``--cluster W...`` also runs the jobs through spark-submit on a standalone cluster on
127.0.0.1 (``spark_jobs.cluster``) of W workers with ``--cluster-cores`` cores and
``--executor-memory`` each, started (not timed) before and stopped after each run, and adds
a scaling table: events/s and the speed-up of each added worker or core. With ``--cluster``
the local runs default to ``local[1]`` up to the cluster's largest core count. Every Spark run
must write the row counts DuckDB writes. Each run also reports the machine's mean 1-minute
load average while it ran: on a shared machine, other work on the cores slows a run down.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from encore.core.config import EncoreConfig, load_config
from encore.core.contracts import CLEAN_EVENT, arrow_schema
from spark_jobs import cluster
from spark_jobs.connect_server import free_port, start_server, stop_server
from spark_jobs.submit import spark_submit_options, submit_env
from benchmarks.experiments import save_report
from benchmarks.jvm_profile import summarize

log = logging.getLogger("benchmarks.spark_bench")

N_DAYS = 30
START = dt.date(2026, 10, 1)
EVENTS_PER_USER = 200
EVENTS_PER_SESSION = 10
CHUNK_EVENTS = 1_000_000
RESULT_MARKER = "ENCORE_BENCH_RESULT "  # starts the engine process's result line (a JVM may print after it)
CLUSTER_DRIVER_MEMORY = "2g"  # on a cluster the driver only plans and collects the stats
LOCAL_2 = {"setup": "local[2]", "workers": 0, "cores": 2}  # the Spark run of results without a setup (before --cluster)


def generate_clean_events(cfg: EncoreConfig, n_events: int, seed: int = 0) -> dict:
    """Write ~n_events synthetic clean events to the lake, one file per (chunk, day)."""
    rng = np.random.default_rng(seed)
    n_users = max(10, n_events // EVENTS_PER_USER)
    n_items = max(100, n_events // 500)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.9
    item_cdf = np.cumsum(popularity) / popularity.sum()
    schema = arrow_schema(CLEAN_EVENT)
    written, chunk, days = 0, 0, set()
    while written < n_events:
        n_sessions = max(1, min(CHUNK_EVENTS, n_events - written) // EVENTS_PER_SESSION)
        lengths = rng.geometric(1.0 / EVENTS_PER_SESSION, n_sessions)
        session_of = np.repeat(np.arange(n_sessions), lengths)
        n = len(session_of)
        start_us = rng.integers(0, N_DAYS * 86_400, n_sessions) * 1_000_000
        gaps_us = rng.exponential(180.0, n) * 1_000_000  # ~3 min between plays of a session
        first = np.r_[0, np.cumsum(lengths)[:-1]]
        offset = np.cumsum(gaps_us) - np.repeat(np.cumsum(gaps_us)[first], lengths)
        base_us = int(dt.datetime(START.year, START.month, START.day, tzinfo=dt.timezone.utc).timestamp() * 1e6)
        ts_us = base_us + start_us[session_of] + offset.astype(np.int64)
        skipped = rng.random(n) < 0.3
        completion = np.where(skipped, rng.uniform(0.0, 0.25, n), rng.uniform(0.5, 1.0, n)).round(3)
        users = rng.integers(0, n_users, n_sessions)[session_of]
        items = np.minimum(np.searchsorted(item_cdf, rng.random(n)), n_items - 1)
        ids = rng.integers(0, 2**63 - 1, n, dtype=np.int64)
        table = pa.table(
            {
                "user_id": pc.binary_join_element_wise("u", pc.cast(pa.array(users), pa.string()), ""),
                "item_id": pc.binary_join_element_wise("i", pc.cast(pa.array(items), pa.string()), ""),
                "ts": pa.array(ts_us, pa.timestamp("us", tz="UTC")),
                "session_id": pa.nulls(n, pa.string()),
                "duration_ms": pa.nulls(n, pa.int64()),
                "item_length_ms": pa.nulls(n, pa.int64()),
                "completion": completion,
                "skip_level": pa.nulls(n, pa.int32()),
                "rating": pa.nulls(n, pa.float64()),
                "source": pa.array(np.full(n, "bench", dtype=object), pa.string()),
                "event_id": pc.cast(pa.array(ids), pa.string()),
                "source_file": pa.array(np.full(n, f"bench-{chunk}", dtype=object), pa.string()),
                "source_row": pa.array(np.arange(n, dtype=np.int64)),
            }
        ).cast(schema)
        day_of = (ts_us - base_us) // 86_400_000_000
        days.update(int(day) for day in np.unique(day_of))
        for day in np.unique(day_of):
            target = Path(cfg.lake_path("events_clean", START + dt.timedelta(days=int(day))))
            target.mkdir(parents=True, exist_ok=True)
            pq.write_table(table.filter(pa.array(day_of == day)), target / f"part-{chunk:04d}.parquet")
        written += n
        chunk += 1
        log.info("generated %d / %d events", written, n_events)
    for day in days:  # each day's partition is complete: mark it as the lake's writers do
        Path(cfg.lake_path("events_clean", START + dt.timedelta(days=day)), "_SUCCESS").touch()
    run_date = START + dt.timedelta(days=max(days))  # the newest day with events
    return {"events": written, "users": n_users, "items": n_items, "run_date": run_date.isoformat()}


def run_engine(engine: str, run_date: str, out_dir: str, repeats: int = 1) -> dict:
    """Body of one engine subprocess (config from ENCORE_HOME): its stats, the first run's at the top.

    The first run is the nightly's case, a fresh process (for Spark a cold JVM: session start,
    class loading, JIT compilation). With ``repeats`` > 1 the same job runs again in the same
    process, over the same inputs and outputs (every stage is idempotent), and ``warm`` holds
    the fastest later run: what a long-lived engine (a warm JVM) spends on the work itself.
    """
    cfg = load_config()
    runs = [run_once(engine, cfg, run_date, out_dir) for _ in range(repeats)]
    result = runs[0]
    if repeats > 1:
        warm = min(runs[1:], key=lambda r: r["job_seconds"])
        result["warm"] = {"job_seconds": warm["job_seconds"], "stage_seconds": warm["stage_seconds"]}
    return result


def run_once(engine: str, cfg: EncoreConfig, run_date: str, out_dir: str) -> dict:
    began = time.monotonic()
    if engine == "spark":
        from spark_jobs.pipeline import JOBS, run_all
        from spark_jobs.session import jit_mode

        stats = run_all(cfg, run_date)  # the session of an earlier run is reused
        stages = {
            "session_start": round(time.monotonic() - began - stats["seconds"], 2),
            # listing the window's partitions, reading Parquet footers, planning the shared frame
            "read_and_plan": round(stats["seconds"] - sum(stats[job]["seconds"] for job in JOBS), 2),
            "sessionize": stats["sessionize"]["seconds"],
            "sequences": stats["sequences"]["seconds"],
            "phns_pools": stats["phns_pools"]["pools_seconds"],
            "phns_negatives": round(stats["phns_pools"]["seconds"] - stats["phns_pools"]["pools_seconds"], 2),
        }
        rows = {"sequences": stats["sequences"]["sequences"], "phns_pools": stats["phns_pools"]["phns_pools"]}
        extra = {"spark_mode": cfg.spark.mode,
                 "jvm_jit": "the server's" if cfg.spark.mode == "connect" else jit_mode(cfg, run_date)}
    else:
        from benchmarks.duckdb_reference import run_reference

        stats = run_reference(cfg, run_date, out_dir, threads=2)
        stages, rows, extra = stats["stage_seconds"], stats["rows"], {}
    return {"job_seconds": round(time.monotonic() - began, 2), "stage_seconds": stages, "rows": rows, **extra}


def spark_settings(driver_memory: str, master: str = "local[2]") -> dict[str, str]:
    """The Spark settings of every benchmark run; by default two cores, as DuckDB gets two threads."""
    return {"ENCORE__SPARK__MASTER": master, "ENCORE__SPARK__DRIVER_MEMORY": driver_memory,
            "ENCORE__SPARK__SHUFFLE_PARTITIONS": "4"}


def measure(
    engine: str, home: str, run_date: str, driver_memory: str, recording: Path | None = None, repeats: int = 1,
    server: tuple[str, subprocess.Popen] | None = None, master: str = "local[2]",
    on_cluster: EncoreConfig | None = None,
) -> dict:
    """Run one engine in a subprocess; wall time and peak RSS of its whole process tree.

    With ``recording`` (Spark only) the JVM writes a Flight Recorder recording there, summarised
    by operator in the result (``cpu_by_operator``). With ``server`` (URL, process) the Spark
    jobs run as a client of that Spark Connect server, whose memory counts too. With
    ``on_cluster`` (the config of a running ``spark_jobs.cluster``) the engine process is a
    spark-submit driver on that cluster, as the nightly's ``spark.mode = submit``; the master,
    the workers and their executors count too.
    """
    env = dict(os.environ, ENCORE_HOME=home, **spark_settings(driver_memory, master))
    if recording is not None:
        env["ENCORE__SPARK__JAVA_OPTIONS"] = f"-XX:StartFlightRecording=filename={recording},settings=profile"
    if server is not None:
        env.update(ENCORE__SPARK__MODE="connect", ENCORE__SPARK__REMOTE=server[0])
    out_dir = str(Path(home) / f"out_{engine}")
    args = ["--engine", engine, "--run-date", run_date, "--out", out_dir, "--repeats", str(repeats)]
    cmd = [sys.executable, "-m", "benchmarks.spark_bench", *args]
    daemons = []
    if on_cluster is not None:
        env.update(ENCORE__SPARK__MODE="submit", ENCORE__SPARK__EXECUTOR_MEMORY=on_cluster.spark.executor_memory)
        submitted = load_config(environ=env)
        env = submit_env(submitted)
        cmd = [*spark_submit_options(submitted, run_date), str(Path(__file__).resolve()), *args]
        daemons = [d["pid"] for d in cluster.status(on_cluster)["daemons"]]
    began = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    peak = 0
    roots = [psutil.Process(pid) for pid in [proc.pid, *daemons, *([server[1].pid] if server else [])]]

    loads = []  # the machine's 1-minute load average: other work on the cores skews the timings

    def sample() -> None:
        nonlocal peak
        while proc.poll() is None:
            try:
                tree = [p for root in roots for p in (root, *root.children(recursive=True))]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            loads.append(os.getloadavg()[0])
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, _ = proc.communicate()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"bench {engine} failed with exit code {proc.returncode}")
    lines = [line for line in stdout.splitlines() if line.startswith(RESULT_MARKER)]
    if not lines:
        raise RuntimeError(f"bench {engine} printed no {RESULT_MARKER.strip()} line")
    result = json.loads(lines[-1][len(RESULT_MARKER):])
    result.update(wall_seconds=round(time.monotonic() - began, 2), peak_rss_mb=round(peak / 2**20),
                  load_average=round(sum(loads) / max(len(loads), 1), 1))
    if recording is not None:
        result.update(recording=str(recording), **summarize(recording))
    return result


def start_bench_server(home: str, driver_memory: str, master: str) -> tuple[str, subprocess.Popen]:
    """A fresh Spark Connect server with the benchmark's Spark settings: (URL, process)."""
    cfg = load_config(environ=spark_settings(driver_memory, master), paths={"home": home})
    port = free_port()
    return f"sc://localhost:{port}", start_server(cfg, port, Path(home) / "connect-server.log")


def bench_cluster(home: str, workers: int, cores: int, executor_memory: str) -> EncoreConfig:
    """The config of a cluster for one benchmark run: state under ``home``, free ports (a
    cluster the user runs on the default ports is left alone), one executor per worker."""
    return load_config(environ={}, paths={"home": home}, spark={
        "cluster_workers": workers, "worker_cores": cores, "worker_memory": executor_memory,
        "executor_memory": executor_memory, "master_port": free_port(), "webui_port": cluster.free_ports(workers + 1)})


def run_spark_setups(home: str, data: dict, args: argparse.Namespace, local_cores: list[int]) -> list[dict]:
    """The Spark runs of one size: ``local[C]`` in-process (or as Connect clients), then each cluster."""
    results = []
    for cores in local_cores:
        master = f"local[{cores}]"
        log.info("running spark %s on %d events", master, data["events"])
        recording = args.profile / f"spark-{data['events']}-local{cores}.jfr" if args.profile else None
        server = start_bench_server(home, args.driver_memory, master) if args.spark_connect else None
        try:
            result = measure("spark", home, data["run_date"], args.driver_memory, recording, args.repeats, server,
                             master=master)
        finally:
            if server:
                stop_server(server[1])
        results.append({"engine": "spark", "setup": master, "workers": 0, "cores": cores, **data, **result})
        log.info("%s", results[-1])
    for workers in args.cluster:
        on_cluster = bench_cluster(home, workers, args.cluster_cores, args.executor_memory)
        log.info("starting a cluster of %d worker(s) x %d core(s)", workers, args.cluster_cores)
        began = time.monotonic()
        master = cluster.up(on_cluster)["master_url"]
        started = round(time.monotonic() - began, 2)
        try:
            result = measure("spark", home, data["run_date"], CLUSTER_DRIVER_MEMORY, None, args.repeats,
                             master=master, on_cluster=on_cluster)
        finally:
            cluster.down(on_cluster)
        results.append({"engine": "spark", "setup": f"cluster {workers} x {args.cluster_cores} core",
                        "workers": workers, "cores": workers * args.cluster_cores, "cluster_start_seconds": started,
                        "executor_memory": args.executor_memory, **data, **result})
        log.info("%s", results[-1])
    return results


def same_work_seconds(result: dict) -> float:
    """Job seconds of the work both engines do: Spark's negative sampling has no DuckDB twin."""
    return round(result["job_seconds"] - result["stage_seconds"].get("phns_negatives", 0.0), 2)


def setup(result: dict) -> dict:
    """Where a Spark run ran: ``setup`` (label), ``workers`` (0 = in-process) and ``cores``."""
    return {key: result.get(key, default) for key, default in LOCAL_2.items()}


def by_size(results: list[dict]) -> dict[int, list[dict]]:
    runs: dict[int, list[dict]] = {}
    for r in results:
        runs.setdefault(r["events"], []).append(r)
    return dict(sorted(runs.items()))


def same_rows(spark: dict, duck: dict) -> bool:
    """The same tables from both engines: a differing count is a bug in one of them."""
    return all(spark["rows"][t] == duck["rows"][t] for t in spark["rows"].keys() & duck["rows"].keys())


def rows_disagreeing(results: list[dict]) -> list[str]:
    """The Spark runs (size and setup) whose row counts differ from DuckDB's on the same data."""
    out = []
    for events, runs in by_size(results).items():
        duck = next((r for r in runs if r["engine"] == "duckdb"), None)
        out += [f"{events:,} events, {label(r)}" for r in runs
                if duck and r["engine"] == "spark" and not same_rows(r, duck)]
    return out


def ratios(results: list[dict]) -> list[dict]:
    """Spark ``local[2]`` / DuckDB (2 threads) per size, on the whole job and on the work both engines do."""
    out = []
    for events, runs in by_size(results).items():
        duck = next((r for r in runs if r["engine"] == "duckdb"), None)
        spark = next((r for r in runs if r["engine"] == "spark" and setup(r)["setup"] == "local[2]"), None)
        if spark and duck:
            ratio = {
                "events": events,
                "duckdb_seconds": duck["job_seconds"],
                "spark_seconds": spark["job_seconds"],
                "spark_same_work_seconds": same_work_seconds(spark),
                "spark_over_duckdb": round(spark["job_seconds"] / duck["job_seconds"], 2),
                "spark_over_duckdb_same_work": round(same_work_seconds(spark) / duck["job_seconds"], 2),
                "rows_agree": same_rows(spark, duck),
            }
            if "warm" in spark and "warm" in duck:
                ratio.update(
                    duckdb_warm_seconds=duck["warm"]["job_seconds"],
                    spark_warm_same_work_seconds=same_work_seconds(spark["warm"]),
                    spark_over_duckdb_warm_same_work=round(
                        same_work_seconds(spark["warm"]) / duck["warm"]["job_seconds"], 2
                    ),
                )
            out.append(ratio)
    return out


def scaling(results: list[dict]) -> list[dict]:
    """Per size and Spark family (``local[C]`` in one JVM, standalone cluster): each run's events/s,
    its speed-up over the family's run with the fewest cores, that of the worker (or core) added
    since the previous run, and the parallel efficiency (speed-up / core ratio)."""
    out = []
    for events, runs in by_size(results).items():
        for cluster_family in (False, True):
            family = sorted(({**r, **setup(r)} for r in runs
                             if r["engine"] == "spark" and (setup(r)["workers"] > 0) == cluster_family),
                            key=lambda r: r["cores"])
            for previous, r in zip([None, *family], family):
                first = family[0]
                row = {"events": events, "setup": r["setup"], "cores": r["cores"], "job_seconds": r["job_seconds"],
                       "events_per_second": round(events / r["job_seconds"]),
                       "speedup": round(first["job_seconds"] / r["job_seconds"], 2),
                       "efficiency": round(first["job_seconds"] / r["job_seconds"] * first["cores"] / r["cores"], 2),
                       "speedup_of_added": round(previous["job_seconds"] / r["job_seconds"], 2) if previous else None,
                       "peak_rss_mb": r["peak_rss_mb"]}
                if "warm" in r:
                    row["warm_job_seconds"] = r["warm"]["job_seconds"]
                    row["warm_speedup"] = round(first["warm"]["job_seconds"] / r["warm"]["job_seconds"], 2)
                if "cluster_start_seconds" in r:
                    row["cluster_start_seconds"] = r["cluster_start_seconds"]
                out.append(row)
    return out


def label(r: dict) -> str:
    if r["engine"] == "duckdb":
        return "duckdb"
    return f"spark {setup(r)['setup']}{' (connect)' if r.get('spark_mode') == 'connect' else ''}"


def markdown(results: list[dict]) -> str:
    lines = [
        "| events | engine | wall s (incl. startup) | job s | events/s | peak RSS MB | machine load | stages s |",
        "|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        stages = ", ".join(f"{k} {v}" for k, v in r["stage_seconds"].items())
        lines.append(
            f"| {r['events']:,} | {label(r)} | "
            f"{r['wall_seconds']} | {r['job_seconds']} | "
            f"{r['events'] / r['job_seconds']:,.0f} | {r['peak_rss_mb']:,} | {r.get('load_average', '-')} | {stages} |"
        )
    lines += [
        "",
        "| events | DuckDB s | Spark s | Spark / DuckDB | Spark s without negatives (DuckDB has none) | same work / DuckDB "
        "| same row counts |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in ratios(results):
        lines.append(
            f"| {r['events']:,} | {r['duckdb_seconds']} | {r['spark_seconds']} | {r['spark_over_duckdb']}x | "
            f"{r['spark_same_work_seconds']} | {r['spark_over_duckdb_same_work']}x | {'yes' if r['rows_agree'] else 'NO'} |"
        )
    warm = [r for r in ratios(results) if "spark_over_duckdb_warm_same_work" in r]
    if warm:
        lines += ["", "| events | warm runs: DuckDB s | Spark s without negatives | same work / DuckDB |",
                  "|---:|---:|---:|---:|"]
        lines += [f"| {r['events']:,} | {r['duckdb_warm_seconds']} | {r['spark_warm_same_work_seconds']} | "
                  f"{r['spark_over_duckdb_warm_same_work']}x |" for r in warm]
    scaled = scaling(results)
    if len(scaled) > len(by_size(results)):  # some size ran Spark in more than one setup
        warm = any("warm_job_seconds" in r for r in scaled)
        lines += ["", "| events | Spark | cores | job s | events/s | speed-up vs fewest cores | efficiency "
                  "| speed-up of the added worker / core |" + (" warm job s | warm speed-up |" if warm else "")
                  + " cluster start s |",
                  "|---:|---|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if warm else "") + "---:|"]
        for r in scaled:
            added = f"{r['speedup_of_added']}x" if r["speedup_of_added"] else "-"
            lines.append(f"| {r['events']:,} | {r['setup']} | {r['cores']} | {r['job_seconds']} | "
                         f"{r['events_per_second']:,} | {r['speedup']}x | {r['efficiency']} | {added} |"
                         + (f" {r.get('warm_job_seconds', '-')} | {r.get('warm_speedup', '-')}x |" if warm else "")
                         + f" {r.get('cluster_start_seconds', '-')} |")
    profiled = [r for r in results if "cpu_by_operator" in r]
    if profiled:
        operators = sorted({op for r in profiled for op in r["cpu_by_operator"]},
                           key=lambda op: -max(r["cpu_by_operator"].get(op, 0.0) for r in profiled))
        lines += ["", "| Spark CPU by operator (innermost frame) | "
                  + " | ".join(f"{r['events']:,} events ({r['cpu_samples']:,} samples)" for r in profiled) + " |",
                  "|---|" + "---:|" * len(profiled)]
        lines += [f"| {op} | " + " | ".join(f"{r['cpu_by_operator'].get(op, 0.0):.1%}" for r in profiled) + " |"
                  for op in operators]
        lines += [f"| not in the samples: {label} | " + " | ".join(f"{r[key]} s" for r in profiled) + " |"
                  for key, label in (("gc_pause_seconds", "GC pauses"), ("jit_compile_seconds", "JIT compilation"))]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--out", default="bench_results/spark.json")
    parser.add_argument("--driver-memory", default="6g")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="record the Spark JVM with the Flight Recorder into DIR and report CPU by operator")
    parser.add_argument("--repeats", type=int, default=1,
                        help="run each engine's job this many times in one process; runs after the first are "
                             "reported as warm (for Spark: a warm JVM)")
    parser.add_argument("--spark-connect", action="store_true",
                        help="run the Spark jobs as clients of a Spark Connect server started for each size "
                             "(spark.mode = connect); with --repeats, later runs are nights on a standing server")
    parser.add_argument("--local-cores", type=int, nargs="+",
                        help="run Spark in-process on local[C] for each C (default 2; with --cluster 1 up to its cores)")
    parser.add_argument("--cluster", type=int, nargs="+", default=[], metavar="WORKERS",
                        help="also run the jobs through spark-submit on a standalone cluster of each number of workers")
    parser.add_argument("--cluster-cores", type=int, default=1, help="cores per cluster worker")
    parser.add_argument("--executor-memory", default="4g", help="memory of each cluster worker's executor")
    parser.add_argument("--engine", choices=("spark", "duckdb"), help=argparse.SUPPRESS)
    parser.add_argument("--run-date", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:  # inside an engine subprocess
        print(RESULT_MARKER + json.dumps(run_engine(args.engine, args.run_date, args.out, args.repeats)), flush=True)
        return
    if args.profile:  # the JVM's working directory may differ: an absolute recording path
        args.profile = args.profile.resolve()
        args.profile.mkdir(parents=True, exist_ok=True)
    most_cores = max(args.cluster, default=0) * args.cluster_cores
    local_cores = args.local_cores or (list(range(1, most_cores + 1)) if most_cores else [2])
    results = []
    for n_events in args.events:
        with tempfile.TemporaryDirectory(prefix="encore-bench-") as home:
            cfg = load_config(environ={}, paths={"home": home})
            began = time.monotonic()
            data = generate_clean_events(cfg, n_events)
            log.info("generated %s in %.1fs", data, time.monotonic() - began)
            log.info("running duckdb on %d events", data["events"])
            duck = measure("duckdb", home, data["run_date"], args.driver_memory, repeats=args.repeats)
            results.append({"engine": "duckdb", "setup": "2 threads", "workers": 0, "cores": 2, **data, **duck})
            log.info("%s", results[-1])
            results += run_spark_setups(home, data, args, local_cores)
    report = {"results": results, "ratios": ratios(results), "scaling": scaling(results), "cpu_count": os.cpu_count()}
    save_report(report, args.out, markdown(results))
    wrong = rows_disagreeing(results)
    if wrong:
        raise SystemExit(f"Spark wrote other row counts than DuckDB ({'; '.join(wrong)}): see {args.out}")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    main()
