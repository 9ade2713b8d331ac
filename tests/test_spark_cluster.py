"""The Spark jobs on a standalone cluster (a master and 2 workers of 1 core on 127.0.0.1) write
the same partitions as on ``local[2]``; ``spark_jobs.cluster`` starts, reports and stops it.

One module-scoped cluster on free ports; the nightly's Spark task (``encore.nightly.stages.
spark_jobs``, ``spark.mode = submit``) runs once against it and once on ``local[2]``, each
into its own lake, side by side, on the hand-made fixture of ``test_spark_jobs`` (run date
2026-10-05 and two days of history: gap and midnight sessions, timestamp ties, PHNS pools).
Every ``dt=`` partition of every table the jobs own is compared by row count and an
order-independent checksum (sum of a 64-bit hash per row).
"""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pytest

from encore.core.config import load_config
from fixtures.spark.clean_events import write_clean_events
from spark_jobs import cluster
from spark_jobs.connect_server import free_port, start_server, stop_server
from test_spark_jobs import D, EVENTS, FIXTURE_SETTINGS, spark_jobs_as_connect_client

pytestmark = pytest.mark.spark

TABLES = ("sessionized_events", "sequences", "phns_pools", "phns_negatives")
JOB_SETTINGS = {"driver_memory": "1g", "shuffle_partitions": 4}


def cluster_settings(home: Path, **spark) -> dict:
    return {"environ": {}, "paths": {"home": str(home)},
            "spark": {"master_port": free_port(), "webui_port": cluster.free_ports(3), "cluster_workers": 2,
                      "worker_cores": 1, "worker_memory": "1g", "executor_memory": "768m", **spark}}


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    """(config, status) of a 2-worker cluster, stopped after the module."""
    cfg = load_config(**cluster_settings(tmp_path_factory.mktemp("cluster")))
    report = cluster.up(cfg)
    yield cfg, report
    cluster.down(cfg)


def partition_summary(cfg, table: str) -> dict[str, tuple[int, int]]:
    """Per ``dt=`` partition: (rows, sum of DuckDB's 64-bit hash of each row), order-independent."""
    con = duckdb.connect()
    summary = {}
    for partition in sorted(Path(cfg.lake_path(table)).glob("dt=*")):
        files = sorted(str(f) for f in partition.glob("*.parquet"))
        rows, checksum = con.execute("SELECT count(*), coalesce(sum(hash(t)), 0) FROM read_parquet(?) t",
                                     [files]).fetchone()
        summary[partition.name] = (rows, int(checksum))
    return summary


def job_stats(result: dict) -> dict:
    return {job: {k: v for k, v in result[job].items() if "seconds" not in k}
            for job in ("sessionize", "sequences", "phns_pools")}


def lake_with_events(home: Path, **spark):
    """A config with the fixture's clean events in its lake."""
    cfg = load_config(environ={}, paths={"home": str(home)}, **FIXTURE_SETTINGS, spark=spark)
    write_clean_events(cfg, EVENTS)
    return cfg


@pytest.fixture(scope="module")
def nights(running, tmp_path_factory):
    """The nightly's Spark task for D on the cluster and on local[2] (both through spark-submit),
    side by side, each into its own lake: {"cluster" | "local": (config, result)}."""
    from encore.nightly.stages import spark_jobs

    cfg_cluster, _ = running
    configs = {
        "cluster": lake_with_events(tmp_path_factory.mktemp("on_cluster"), mode="submit",
                                    master=cluster.master_url(cfg_cluster),
                                    executor_memory=cfg_cluster.spark.executor_memory, **JOB_SETTINGS),
        "local": lake_with_events(tmp_path_factory.mktemp("local"), mode="submit", master="local[2]", **JOB_SETTINGS),
    }
    with ThreadPoolExecutor(2) as pool:
        results = dict(zip(configs, pool.map(lambda c: spark_jobs(c, D), configs.values())))
    return {name: (configs[name], results[name]) for name in configs}


def test_up_reports_two_registered_workers_and_is_idempotent(running):
    cfg, report = running
    assert report["up"] and report["alive_workers"] == 2 and report["cores"] == 2 and report["memory_mb"] == 2048
    assert report["master_url"] == f"spark://127.0.0.1:{cfg.spark.master_port}" == cluster.master_url(cfg)
    assert [d["name"] for d in report["daemons"]] == ["master", "worker-1", "worker-2"]
    again = cluster.up(cfg)
    assert [d["pid"] for d in again["daemons"]] == [d["pid"] for d in report["daemons"]]
    text = cluster.format_status(again)
    assert "2 worker(s) alive" in text and f"ENCORE__SPARK__MASTER={report['master_url']}" in text


def test_cluster_writes_the_partitions_local_writes(running, nights):
    """The issue's same-rows check: one date's Spark jobs, 2 workers vs local[2]."""
    cfg_cluster, _ = running
    (on_cluster, cluster_result), (local_lake, local_result) = nights["cluster"], nights["local"]
    assert f"--master {cluster.master_url(cfg_cluster)}" in cluster_result["submitted"]
    assert job_stats(cluster_result) == job_stats(local_result)
    assert cluster_result["history_sessionized_dates"] == local_result["history_sessionized_dates"] == 2
    for table in TABLES:
        summary = partition_summary(on_cluster, table)
        assert summary[f"dt={D}"][0] > 0 and summary == partition_summary(local_lake, table), table
    # the application ran one executor on each worker
    work = cluster.state_dir(cfg_cluster) / "work"
    assert {p.parents[2].name for p in work.glob("worker-*/app-*/*/stderr")} == {"worker-1", "worker-2"}


@pytest.mark.slow
def test_spark_connect_server_on_the_cluster_writes_the_same_partitions(running, nights, tmp_path):
    """spark.mode = connect with a Connect server whose master is the cluster."""
    cfg_cluster, _ = running
    local_lake, _ = nights["local"]
    port = free_port()
    server_cfg = load_config(environ={}, paths={"home": str(tmp_path)},
                             spark={"master": cluster.master_url(cfg_cluster), "driver_memory": "1g",
                                    "executor_memory": "768m"})
    server = start_server(server_cfg, port, tmp_path / "connect-server.log")
    try:
        client_cfg = lake_with_events(tmp_path, mode="connect", remote=f"sc://localhost:{port}", shuffle_partitions=4)
        result = spark_jobs_as_connect_client(client_cfg, D)
    finally:
        stop_server(server)
    assert "Granted executor ID" in (tmp_path / "connect-server.log").read_text()  # executors on the cluster
    assert result["history_sessionized_dates"] == 2
    for table in TABLES:
        assert partition_summary(client_cfg, table) == partition_summary(local_lake, table), table


def test_up_fails_clearly_when_the_master_port_is_taken(tmp_path):
    cfg = load_config(**cluster_settings(tmp_path))
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", cfg.spark.master_port))
        holder.listen()
        with pytest.raises(cluster.ClusterError, match=f"port {cfg.spark.master_port} on 127.0.0.1 .the master. is in use"):
            cluster.up(cfg)
    assert cluster.status(cfg) == {"up": False, "state_dir": str(tmp_path / "cluster"), "daemons": []}


def test_up_that_times_out_names_the_log_and_leaves_no_process(tmp_path):
    import psutil

    cfg = load_config(**cluster_settings(tmp_path))
    with pytest.raises(cluster.ClusterError, match=r"the master did not answer .* within 0 s; see master: .*master\.log"):
        cluster.up(cfg, timeout_s=0.1)
    started_here = [p.pid for p in psutil.process_iter(["cwd"]) if p.info["cwd"] == str(cluster.state_dir(cfg))]
    assert started_here == [] and not cluster.status(cfg)["up"]


def test_up_refuses_executors_larger_than_a_worker(tmp_path):
    cfg = load_config(**cluster_settings(tmp_path, executor_memory="2g"))
    with pytest.raises(cluster.ClusterError, match="does not fit in a worker"):
        cluster.up(cfg)


def test_cli_without_a_cluster(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ENCORE_HOME", str(tmp_path))
    assert cluster.main(["status"]) == 1
    assert "no cluster recorded" in capsys.readouterr().out
    assert cluster.main(["down"]) == 0  # nothing to stop is not an error


def test_bench_scaling_reports_each_added_worker_and_checks_every_run_against_duckdb():
    from benchmarks.spark_bench import markdown, rows_disagreeing, scaling

    rows = {"sequences": 7, "phns_pools": 90}

    def run(engine, setup, workers, cores, seconds, **extra):
        return {"engine": engine, "setup": setup, "workers": workers, "cores": cores, "events": 1_000_000,
                "job_seconds": seconds, "wall_seconds": seconds + 5, "peak_rss_mb": 100, "stage_seconds": {},
                "rows": dict(rows), **extra}

    results = [run("duckdb", "2 threads", 0, 2, 10.0), run("spark", "local[1]", 0, 1, 40.0),
               run("spark", "local[2]", 0, 2, 25.0),
               run("spark", "cluster 1 x 1 core", 1, 1, 50.0, cluster_start_seconds=20.0),
               run("spark", "cluster 2 x 1 core", 2, 2, 30.0, cluster_start_seconds=22.0)]
    table = {r["setup"]: r for r in scaling(results)}
    assert list(table) == ["local[1]", "local[2]", "cluster 1 x 1 core", "cluster 2 x 1 core"]
    assert (table["local[2]"]["speedup"], table["local[2]"]["efficiency"], table["local[2]"]["speedup_of_added"]) == (
        1.6, 0.8, 1.6)
    assert table["cluster 1 x 1 core"]["speedup_of_added"] is None
    assert (table["cluster 2 x 1 core"]["speedup"], table["cluster 2 x 1 core"]["events_per_second"]) == (1.67, 33333)
    assert "| 1,000,000 | cluster 2 x 1 core | 2 | 30.0 | 33,333 | 1.67x | 0.83 | 1.67x | 22.0 |" in markdown(results)
    assert rows_disagreeing(results) == []
    results[-1]["rows"]["phns_pools"] = 89
    assert rows_disagreeing(results) == ["1,000,000 events, spark cluster 2 x 1 core"]
