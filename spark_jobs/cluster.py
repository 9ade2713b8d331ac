"""A Spark standalone cluster on 127.0.0.1: one master and N workers from the pyspark distribution.

``python -m spark_jobs.cluster up [--workers N] [--cores C] [--memory M] | down | status``

``up`` starts ``spark-class org.apache.spark.deploy.master.Master`` on
``127.0.0.1:<spark.master_port>`` and ``spark.cluster_workers`` workers
(``…deploy.worker.Worker``, each with ``spark.worker_cores`` cores and
``spark.worker_memory``), then waits, bounded, until the master's JSON status page lists every
worker ALIVE. ``down`` stops exactly the processes ``up`` started (their PIDs and start times
are in ``<ENCORE_HOME>/cluster/cluster.json``), workers first, with the executors they run.
``status`` reports them and the master's view. ``up`` on a running cluster of the same shape
changes nothing.

State under ``<ENCORE_HOME>/cluster/``: ``cluster.json``, one log per daemon
(``master.log``, ``worker-<i>.log``), worker work dirs (``work/worker-<i>``: the executors'
stdout / stderr per application) and their ``spark.local.dir`` (``local/worker-<i>``: shuffle
and spill files). Everything binds to 127.0.0.1 (RPC and web UIs: master on
``spark.webui_port``, worker i on ``spark.webui_port + i``).

Run the nightly's Spark task on it with ``ENCORE__SPARK__MODE=submit
ENCORE__SPARK__MASTER=spark://127.0.0.1:7077`` (or start ``spark_jobs.connect_server`` with
that master and use ``spark.mode = connect``); the lake stays a local path every process sees.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import psutil
import pyspark

from encore.core.config import EncoreConfig, load_config

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
DAEMON_MEMORY = "512m"  # heap of the master and worker JVMs themselves (executors have their own)
# Daemon settings: fail instead of silently moving to the next free port, no REST submission
# port, and clean finished applications' work dirs after a week.
DAEMON_PROPERTIES = {
    "spark.port.maxRetries": "0",
    "spark.master.rest.enabled": "false",
    "spark.worker.cleanup.enabled": "true",
}
START_TIMEOUT_S = 120.0
REGISTERED = "Successfully registered with master"  # a worker's log line once the master accepted it
STOP_TIMEOUT_S = 30.0


class ClusterError(RuntimeError):
    """The cluster could not be started, or is not in the state a command needs."""


@dataclass
class Daemon:
    """One process ``up`` started: what it is, its PID and start time (against PID reuse), its log."""

    name: str  # master | worker-<i>
    pid: int
    started: float  # psutil create_time
    log: str
    webui_port: int

    def process(self) -> psutil.Process | None:
        """The running process, or None when it exited (or its PID now belongs to another process)."""
        try:
            process = psutil.Process(self.pid)
            return process if abs(process.create_time() - self.started) < 1.0 and process.is_running() else None
        except psutil.Error:
            return None


@dataclass
class ClusterSpec:
    workers: int
    cores: int
    memory: str
    master_port: int
    webui_port: int

    @classmethod
    def from_config(cls, cfg: EncoreConfig, workers: int | None = None, cores: int | None = None,
                    memory: str | None = None) -> "ClusterSpec":
        return cls(workers=workers or cfg.spark.cluster_workers, cores=cores or cfg.spark.worker_cores,
                   memory=memory or cfg.spark.worker_memory, master_port=cfg.spark.master_port,
                   webui_port=cfg.spark.webui_port)

    @property
    def master_url(self) -> str:
        return f"spark://{HOST}:{self.master_port}"

    @property
    def master_webui(self) -> str:
        return f"http://{HOST}:{self.webui_port}"


def state_dir(cfg: EncoreConfig) -> Path:
    return cfg.home / "cluster"


def master_url(cfg: EncoreConfig) -> str:
    """The URL ``spark.master`` takes to run on the cluster of ``up``."""
    return ClusterSpec.from_config(cfg).master_url


def spark_home() -> Path:
    return Path(pyspark.__file__).parent


def free_ports(n: int) -> int:
    """The first of ``n`` consecutive free ports on 127.0.0.1 (a cluster beside another one)."""
    while True:
        with socket.socket() as probe:
            probe.bind((HOST, 0))
            base = probe.getsockname()[1]
        if base + n < 65536 and all(_port_free(port) for port in range(base, base + n)):
            return base


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
            return True
        except OSError:
            return False


def memory_mb(size: str) -> int:
    """Megabytes of a JVM / Spark memory size such as ``512m`` or ``2g``."""
    units = {"k": 1 / 1024, "m": 1, "g": 1024, "t": 1024 * 1024}
    return int(int(size[:-1]) * units[size[-1].lower()])


# ---- up -------------------------------------------------------------------------------------


def up(cfg: EncoreConfig, workers: int | None = None, cores: int | None = None, memory: str | None = None,
       timeout_s: float = START_TIMEOUT_S) -> dict:
    """Start the master and the workers unless a cluster of this shape already runs; its status."""
    spec = ClusterSpec.from_config(cfg, workers, cores, memory)
    if memory_mb(cfg.spark.executor_memory) > memory_mb(spec.memory):
        raise ClusterError(f"an executor (spark.executor_memory={cfg.spark.executor_memory}) does not fit in a worker "
                           f"(spark.worker_memory={spec.memory}): applications would wait for executors forever")
    running = _read_state(cfg)
    if running:
        alive = [d for d in running["daemons"] if Daemon(**d).process()]
        if len(alive) == len(running["daemons"]) and running["spec"] == asdict(spec):
            log.info("cluster already up at %s", spec.master_url)
            return status(cfg)
        if alive:
            raise ClusterError(f"a cluster of another shape (or partly stopped) runs from {state_dir(cfg)}: "
                               f"{running['spec']}; run `python -m spark_jobs.cluster down` first")
        log.info("the cluster recorded in %s is not running any more: starting a new one", state_dir(cfg))
    _check_ports_free(spec)
    directory = state_dir(cfg)
    directory.mkdir(parents=True, exist_ok=True)
    properties = directory / "spark-daemons.properties"
    properties.write_text("".join(f"{key} {value}\n" for key, value in DAEMON_PROPERTIES.items()))
    daemons: list[Daemon] = []
    try:
        daemons.append(_start(directory, "master", spec.webui_port, [
            MASTER_CLASS, "--host", HOST, "--port", str(spec.master_port), "--webui-port", str(spec.webui_port),
            "--properties-file", str(properties)]))
        log.info("master starting at %s (web UI %s, log %s)", spec.master_url, spec.master_webui, daemons[0].log)
        # the workers start at once (their JVMs take as long as the master's): each retries
        # registering until the master listens
        for i in range(1, spec.workers + 1):
            name = f"worker-{i}"
            local_dir = directory / "local" / name
            local_dir.mkdir(parents=True, exist_ok=True)
            daemons.append(_start(directory, name, spec.webui_port + i, [
                WORKER_CLASS, "--host", HOST, "--cores", str(spec.cores), "--memory", spec.memory,
                "--work-dir", str(directory / "work" / name), "--webui-port", str(spec.webui_port + i),
                "--properties-file", str(properties), spec.master_url], SPARK_LOCAL_DIRS=str(local_dir)))
            log.info("%s starting: %d core(s), %s (log %s)", name, spec.cores, spec.memory, daemons[-1].log)
        _wait_for(lambda: _master_json(spec) is not None, daemons, timeout_s,
                  f"the master did not answer on {spec.master_webui}/json/", lambda: daemons[:1])
        _wait_for(lambda: _alive_workers(spec) >= spec.workers, daemons, timeout_s,
                  f"not all {spec.workers} workers registered with the master at {spec.master_url}",
                  lambda: [d for d in daemons[1:] if REGISTERED not in _tail(d.log, chars=None)])
    except BaseException:
        _stop(daemons)
        raise
    _write_state(cfg, {"spec": asdict(spec), "master_url": spec.master_url, "daemons": [asdict(d) for d in daemons]})
    log.info("cluster up: %s with %d worker(s) x %d core(s), %s each", spec.master_url, spec.workers, spec.cores,
             spec.memory)
    return status(cfg)


def _check_ports_free(spec: ClusterSpec) -> None:
    ports = {spec.master_port: "the master", spec.webui_port: "the master's web UI"}
    ports.update({spec.webui_port + i: f"worker {i}'s web UI" for i in range(1, spec.workers + 1)})
    for port, what in ports.items():
        if not _port_free(port):
            raise ClusterError(
                f"port {port} on {HOST} ({what}) is in use: another Spark cluster or service holds it; stop it, "
                "or choose other ports with ENCORE__SPARK__MASTER_PORT / ENCORE__SPARK__WEBUI_PORT")


def _daemon_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "SPARK_HOME": str(spark_home()), "SPARK_LOCAL_IP": HOST, "SPARK_MASTER_HOST": HOST,
            "SPARK_DAEMON_MEMORY": DAEMON_MEMORY, **extra}


def _start(directory: Path, name: str, webui_port: int, args: list[str], **env: str) -> Daemon:
    """Start ``spark-class ARGS`` in its own session (it outlives this command), logging to ``<name>.log``.
    ``spark-class`` execs the JVM, so the PID is the JVM's."""
    log_path = directory / f"{name}.log"
    with open(log_path, "w") as log_file:
        process = subprocess.Popen([str(spark_home() / "bin" / "spark-class"), *args], env=_daemon_env(**env),
                                   stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                                   cwd=directory, start_new_session=True)
    return Daemon(name=name, pid=process.pid, started=psutil.Process(process.pid).create_time(), log=str(log_path),
                  webui_port=webui_port)


def _wait_for(ready: Callable[[], bool], daemons: list[Daemon], timeout_s: float, what: str,
              not_ready: Callable[[], list[Daemon]]) -> None:
    """Poll ``ready()`` until true; fail naming the log of a daemon that exited or, at the
    deadline, the logs of the daemons ``not_ready()`` names."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        dead = [d for d in daemons if d.process() is None]
        if dead:
            raise ClusterError(f"{what}: {dead[0].name} exited; its log {dead[0].log}:\n{_tail(dead[0].log)}")
        if time.monotonic() > deadline:
            suspects = not_ready() or daemons
            logs = ", ".join(f"{d.name}: {d.log}" for d in suspects)
            raise ClusterError(f"{what} within {timeout_s:.0f} s; see {logs}\n{_tail(suspects[0].log)}")
        time.sleep(0.5)


def _tail(path: str, chars: int | None = 3000) -> str:
    """The end of a log (``chars=None``: all of it)."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return text if chars is None else text[-chars:]


# ---- the master's view ----------------------------------------------------------------------


def _master_json(spec: ClusterSpec) -> dict | None:
    """The master's status page (``/json/``): workers, cores, memory, applications; None when down."""
    try:
        with urllib.request.urlopen(f"{spec.master_webui}/json/", timeout=2) as response:
            return json.load(response)
    except (OSError, urllib.error.URLError, ValueError):
        return None


def _alive_workers(spec: ClusterSpec) -> int:
    master = _master_json(spec) or {}
    return sum(1 for worker in master.get("workers", []) if worker.get("state") == "ALIVE")


def status(cfg: EncoreConfig) -> dict:
    """``up``: whether every recorded daemon runs and every worker is registered ALIVE; the
    daemons, and the master's view (alive workers, cores, memory, running applications)."""
    state = _read_state(cfg)
    if not state:
        return {"up": False, "state_dir": str(state_dir(cfg)), "daemons": []}
    spec = ClusterSpec(**state["spec"])
    daemons = [Daemon(**d) for d in state["daemons"]]
    master = _master_json(spec)
    workers = [w for w in (master or {}).get("workers", []) if w.get("state") == "ALIVE"]
    running = all(d.process() for d in daemons)
    return {
        "up": running and len(workers) >= spec.workers,
        "master_url": spec.master_url,
        "master_webui": spec.master_webui,
        "state_dir": str(state_dir(cfg)),
        "daemons": [{"name": d.name, "pid": d.pid, "running": d.process() is not None, "log": d.log,
                     "webui": f"http://{HOST}:{d.webui_port}"} for d in daemons],
        "alive_workers": len(workers),
        "cores": sum(w.get("cores", 0) for w in workers),
        "memory_mb": sum(w.get("memory", 0) for w in workers),
        "active_apps": [app.get("name") for app in (master or {}).get("activeapps", [])],
    }


# ---- down -----------------------------------------------------------------------------------


def down(cfg: EncoreConfig) -> dict:
    """Stop the daemons ``up`` recorded (workers first, with their executors), then forget them."""
    state = _read_state(cfg)
    if not state:
        log.info("no cluster recorded in %s: nothing to stop", state_dir(cfg))
        return {"stopped": []}
    daemons = [Daemon(**d) for d in state["daemons"]]
    stopped = _stop(daemons)
    (state_dir(cfg) / "cluster.json").unlink()
    log.info("cluster down: stopped %s", ", ".join(stopped) or "nothing (already exited)")
    return {"stopped": stopped}


def _stop(daemons: list[Daemon]) -> list[str]:
    """SIGTERM each daemon (workers before the master) and the executors it started, SIGKILL after
    ``STOP_TIMEOUT_S``. Only processes whose PID and start time match the record are touched."""
    stopped = []
    for daemon in sorted(daemons, key=lambda d: d.name == "master"):
        process = daemon.process()
        if process is None:
            continue
        children = process.children(recursive=True)  # a worker's executors
        for target in (process, *children):
            try:
                target.terminate()
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs([process, *children], timeout=STOP_TIMEOUT_S)
        for target in alive:
            log.warning("%s (pid %d) did not stop on SIGTERM: killing it", daemon.name, target.pid)
            target.kill()
        psutil.wait_procs(alive, timeout=STOP_TIMEOUT_S)
        stopped.append(f"{daemon.name} (pid {daemon.pid})")
    return stopped


# ---- state ----------------------------------------------------------------------------------


def _read_state(cfg: EncoreConfig) -> dict | None:
    path = state_dir(cfg) / "cluster.json"
    return json.loads(path.read_text()) if path.exists() else None


def _write_state(cfg: EncoreConfig, state: dict) -> None:
    path = state_dir(cfg) / "cluster.json"
    path.with_suffix(".tmp").write_text(json.dumps(state, indent=2))
    path.with_suffix(".tmp").replace(path)


# ---- CLI ------------------------------------------------------------------------------------


def format_status(report: dict) -> str:
    if not report["daemons"]:
        return f"no cluster recorded in {report['state_dir']}"
    lines = [f"cluster {'up' if report['up'] else 'NOT up'}: {report['master_url']} (web UI {report['master_webui']}), "
             f"{report['alive_workers']} worker(s) alive, {report['cores']} core(s), {report['memory_mb']} MB; "
             f"running applications: {', '.join(report['active_apps']) or 'none'}"]
    lines += [f"  {d['name']:<10} pid {d['pid']:<8} {'running' if d['running'] else 'EXITED':<8} {d['webui']}  log {d['log']}"
              for d in report["daemons"]]
    if report["up"]:
        lines.append(f"nightly on it: ENCORE__SPARK__MODE=submit ENCORE__SPARK__MASTER={report['master_url']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``encore cluster up|down|status``: 0 when the command did what it says (status: the cluster is up)."""
    parser = argparse.ArgumentParser(prog="python -m spark_jobs.cluster", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", help="start the master and the workers (no-op when already up)")
    start.add_argument("--workers", type=int, help="number of workers (default spark.cluster_workers)")
    start.add_argument("--cores", type=int, help="cores per worker (default spark.worker_cores)")
    start.add_argument("--memory", help="memory per worker, e.g. 2g (default spark.worker_memory)")
    commands.add_parser("down", help="stop the daemons `up` started")
    commands.add_parser("status", help="the daemons and the master's view")
    args = parser.parse_args(argv)
    cfg = load_config()
    try:
        if args.command == "up":
            report = up(cfg, args.workers, args.cores, args.memory)
        elif args.command == "down":
            down(cfg)
            return 0
        else:
            report = status(cfg)
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(format_status(report))
    return 0 if report["up"] else 1


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    raise SystemExit(main())
