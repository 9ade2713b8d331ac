"""A standing Spark Connect server for ``spark.mode = connect``.

``python -m spark_jobs.connect_server [--port 15002]`` runs Spark's Connect server in the
foreground (``spark-submit --class ...SparkConnectServer``, the server that ships with
pyspark) with the master, driver memory and JVM options of ``cfg.spark``. Nightly tasks
with ``spark.mode = connect`` and ``spark.remote = sc://<host>:<port>`` are its clients:
the server's JVM outlives every night, so only the first night pays for class loading
and JIT compilation. The lake path must be the same for the server and the tasks (a
shared disk or an object store), as for any cluster.
"""

from __future__ import annotations

import argparse
import logging
import socket
import subprocess
import time
from pathlib import Path

from encore.core.config import EncoreConfig, load_config
from spark_jobs.session import driver_java_options
from spark_jobs.submit import spark_submit_path, submit_env

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
DEFAULT_PORT = 15002
STARTED = "Spark Connect server started"  # the server's log line once it accepts clients


def server_command(cfg: EncoreConfig, port: int = DEFAULT_PORT) -> list[str]:
    """argv of a Connect server on ``port`` with ``cfg.spark``'s master, memory and JVM options.

    Its JIT is ``jit_mode``'s choice for an unknown input (``hot`` under ``auto``): a
    long-lived server runs large and small nights alike.
    """
    java_options = driver_java_options(cfg, None)
    return [
        spark_submit_path(),
        "--class", SERVER_CLASS,
        "--name", "encore-spark-connect",
        "--master", cfg.spark.master,
        "--driver-memory", cfg.spark.driver_memory,
        "--executor-memory", cfg.spark.executor_memory,
        "--conf", f"spark.driver.extraJavaOptions={java_options}",
        "--conf", f"spark.executor.extraJavaOptions={java_options}",
        "--conf", f"spark.connect.grpc.binding.port={port}",
        "--conf", "spark.ui.showConsoleProgress=false",
        "spark-internal",  # no application file: the server class is on Spark's classpath
    ]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def start_server(cfg: EncoreConfig, port: int, log_path: Path, timeout_s: float = 120) -> subprocess.Popen:
    """Start a server in the background, logging to ``log_path``; returns once it accepts clients."""
    with open(log_path, "w") as log_file:
        server = subprocess.Popen(server_command(cfg, port), env=submit_env(cfg), stdout=log_file,
                                  stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout_s
    while STARTED not in log_path.read_text():
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            raise RuntimeError(f"Spark Connect server did not start on port {port}; its log {log_path}:\n"
                               + log_path.read_text()[-3000:])
        time.sleep(0.5)
    return server


def stop_server(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    cfg = load_config()
    command = server_command(cfg, args.port)
    logging.info("starting Spark Connect server on port %d: %s", args.port, " ".join(command))
    return subprocess.call(command, env=submit_env(cfg))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    raise SystemExit(main())
