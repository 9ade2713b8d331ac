"""The deployed services on one machine: what runs, on which port, its log, its health check.

=================  ==========================  =====================================================
service            listens on (cfg.deploy)     health check
=================  ==========================  =====================================================
postgres           host:pg_port                the postmaster's PID, ``SELECT 1`` as the pipeline's role
mlflow             host:mlflow_port            ``GET /health``
airflow-api-server host:airflow_port           ``GET /api/v2/monitor/health`` (metadatabase)
airflow-scheduler  —                           its PID, and the api-server's health says ``scheduler``
airflow-dag-proc.  —                           its PID, and ``dag_processor`` healthy
airflow-triggerer  —                           its PID, and ``triggerer`` healthy
=================  ==========================  =====================================================

Postgres holds three databases: Airflow's metadata (``pg_airflow_database``), MLflow's backend
store (``pg_mlflow_database``) and the warehouse (``pg_database``). Airflow runs its production
components with the LocalExecutor, DAGs from ``dags/``; the pipeline's tasks run with
``deploy.warehouse = postgres`` and MLflow at ``http://host:mlflow_port``. Logs are under
``<ENCORE_HOME>/deploy/logs/``, pid files under ``deploy/pids/``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

from encore.core import postgres
from encore.core.config import EncoreConfig
from encore.deploy import processes
from encore.deploy.pg_server import PostgresServer, port_is_free
from encore.deploy.state import DeployState

log = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_ADMIN = "admin"
BIN = Path(sys.executable).parent


class DeployError(RuntimeError):
    """A service could not be started, or is not healthy (the message names it and its log)."""


@dataclass(frozen=True)
class Service:
    name: str
    command: list[str]
    address: str  # host:port it listens on, or "-"
    log_file: Path
    pid_file: Path


def deployed(cfg: EncoreConfig) -> EncoreConfig:
    """The config the services run the pipeline with: the Postgres warehouse, the MLflow server."""
    state = DeployState.of(cfg)
    out = copy.deepcopy(cfg)
    out.deploy.warehouse = "postgres"
    out.paths.mlflow_tracking_uri = f"http://{cfg.deploy.host}:{cfg.deploy.mlflow_port}"
    out.paths.mlflow_artifacts = str(state.mlflow_artifacts)
    out.paths.airflow_home = str(state.airflow_home)
    return out


def postgres_server(cfg: EncoreConfig) -> PostgresServer:
    return PostgresServer(DeployState.of(cfg).postgres, port=cfg.deploy.pg_port, host=cfg.deploy.host,
                          os_user=cfg.deploy.pg_os_user)


def _pg_url(cfg: EncoreConfig, driver: str, database: str) -> str:
    """A SQLAlchemy URL without a password: libpq reads it from PGPASSFILE."""
    return f"postgresql{driver}://{cfg.deploy.pg_user}@{cfg.deploy.host}:{cfg.deploy.pg_port}/{database}"


def service_env(cfg: EncoreConfig) -> dict[str, str]:
    """The environment of every service process (and of the tasks the scheduler runs)."""
    state = DeployState.of(cfg)
    d = cfg.deploy
    env = dict(os.environ)
    env.pop("ENCORE_PG_PASSWORD", None)  # the password reaches libpq through PGPASSFILE only
    env.update(deployed(cfg).env())
    base_url = f"http://{d.host}:{d.airflow_port}"
    env.update({
        "PGPASSFILE": str(state.pgpass),
        "AIRFLOW_HOME": str(state.airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": _pg_url(cfg, "+psycopg2", d.pg_airflow_database),
        "AIRFLOW__API__BASE_URL": base_url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": state.secret("airflow_jwt_secret"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{AIRFLOW_ADMIN}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(state.secrets / "airflow-passwords.json"),
    })
    # Two cores: a few task processes at a time, one api-server worker.
    env.setdefault("AIRFLOW__CORE__PARALLELISM", "4")
    env.setdefault("AIRFLOW__API__WORKERS", "1")
    env.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")
    # Nights run on the data's own calendar: each is triggered with its logical date
    # (`encore deploy test`, the REST API or the UI). The scheduler does not create the
    # DAG's calendar runs, which would catch up every day from its start_date to today.
    env.setdefault("AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE", "False")
    return env


def services(cfg: EncoreConfig) -> list[Service]:
    state = DeployState.of(cfg)
    d = cfg.deploy
    airflow = str(BIN / "airflow")

    def service(name: str, command: list[str], address: str = "-") -> Service:
        return Service(name, command, address, state.logs / f"{name}.log", state.pids / f"{name}.pid")

    return [
        service("mlflow", [str(BIN / "mlflow"), "server", "--host", d.host, "--port", str(d.mlflow_port),
                           "--backend-store-uri", _pg_url(cfg, "+psycopg2", d.pg_mlflow_database),
                           "--artifacts-destination", str(state.mlflow_artifacts), "--workers", "1"],
                f"{d.host}:{d.mlflow_port}"),
        service("airflow-api-server", [airflow, "api-server", "--host", d.host, "--port", str(d.airflow_port),
                                       "--workers", "1"], f"{d.host}:{d.airflow_port}"),
        service("airflow-scheduler", [airflow, "scheduler"]),
        service("airflow-dag-processor", [airflow, "dag-processor"]),
        service("airflow-triggerer", [airflow, "triggerer"]),
    ]


# --------------------------------------------------------------------------- health


def airflow_health(cfg: EncoreConfig) -> dict[str, str]:
    """Component -> status from the api-server (metadatabase, scheduler, triggerer, dag_processor)."""
    url = f"http://{cfg.deploy.host}:{cfg.deploy.airflow_port}/api/v2/monitor/health"
    try:
        body = requests.get(url, timeout=5).json()
    except (requests.RequestException, ValueError):
        return {}
    return {name: (info or {}).get("status") or "unknown" for name, info in body.items()}


def mlflow_healthy(cfg: EncoreConfig) -> bool:
    try:
        return requests.get(f"http://{cfg.deploy.host}:{cfg.deploy.mlflow_port}/health", timeout=5).ok
    except requests.RequestException:
        return False


def postgres_healthy(cfg: EncoreConfig) -> bool:
    try:
        con = postgres.connect(cfg)
    except postgres.WarehouseUnavailable:
        return False
    con.close()
    return True


def health(cfg: EncoreConfig) -> dict[str, bool]:
    """Service name -> healthy (its process runs and its check passes)."""
    with _pgpass_env(cfg):
        result = {"postgres": postgres_server(cfg).pid() is not None and postgres_healthy(cfg)}
    airflow = airflow_health(cfg)
    component = {"airflow-api-server": "metadatabase", "airflow-scheduler": "scheduler",
                  "airflow-dag-processor": "dag_processor", "airflow-triggerer": "triggerer"}
    for svc in services(cfg):
        alive = processes.running_pid(svc.pid_file) is not None
        if svc.name == "mlflow":
            result[svc.name] = alive and mlflow_healthy(cfg)
        else:
            result[svc.name] = alive and airflow.get(component[svc.name]) == "healthy"
    return result


@contextlib.contextmanager
def _pgpass_env(cfg: EncoreConfig):
    """Within: this process' libpq reads the deployment's password file (unless a password is set)."""
    before = os.environ.get("PGPASSFILE")
    os.environ["PGPASSFILE"] = str(DeployState.of(cfg).pgpass)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PGPASSFILE", None)
        else:
            os.environ["PGPASSFILE"] = before


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "".join(path.read_text(errors="replace").splitlines(keepends=True)[-lines:])
    except OSError:
        return "(no log)"


def _wait(what: str, ready: Callable[[], bool], svc: Service | None, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if svc is not None and processes.running_pid(svc.pid_file) is None:
            raise DeployError(f"{svc.name} exited while starting; log: {svc.log_file}\n{_log_tail(svc.log_file)}")
        if time.monotonic() > deadline:
            where = f"; log: {svc.log_file}\n{_log_tail(svc.log_file)}" if svc else ""
            raise DeployError(f"{what} not healthy after {timeout_s:.0f} s{where}")
        time.sleep(1)


# --------------------------------------------------------------------------- up / down / status


def _start_postgres(cfg: EncoreConfig) -> None:
    state = DeployState.of(cfg)
    d = cfg.deploy
    server = postgres_server(cfg)
    print(f"postgres: {'running' if server.pid() else 'starting'} on {d.host}:{d.pg_port} (data {server.data_dir})",
          flush=True)
    server.start()
    passwords = {d.pg_user: state.secret("pg_password"), d.pg_analyst_user: state.secret("pg_analyst_password")}
    for role, password in passwords.items():
        server.ensure_role(role, password)
    state.write_pgpass(d.pg_port, passwords)
    for database in (d.pg_airflow_database, d.pg_mlflow_database, d.pg_database):
        server.ensure_database(database, owner=d.pg_user)
    owner, analyst = f'"{d.pg_user}"', f'"{d.pg_analyst_user}"'
    server.sql(f'REVOKE CONNECT ON DATABASE "{d.pg_airflow_database}", "{d.pg_mlflow_database}" FROM PUBLIC;\n'
               f'GRANT CONNECT ON DATABASE "{d.pg_airflow_database}", "{d.pg_mlflow_database}" TO {owner};\n')
    # the analysts' role reads everything the pipeline's role creates in the warehouse, now and later
    server.sql(f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} GRANT USAGE ON SCHEMAS TO {analyst};\n"
               f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} GRANT SELECT ON TABLES TO {analyst};\n"
               f"GRANT USAGE ON SCHEMA public TO {analyst};\n"
               f"DO $$ DECLARE s text; BEGIN FOR s IN SELECT nspname FROM pg_namespace n JOIN pg_roles r "
               f"ON r.oid = n.nspowner WHERE r.rolname = '{d.pg_user}' OR nspname = 'public' LOOP "
               f"EXECUTE format('GRANT USAGE ON SCHEMA %I TO {analyst}', s); "
               f"EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO {analyst}', s); END LOOP; END $$;\n",
               database=d.pg_database)


def _desired_config(cfg: EncoreConfig) -> dict[str, str]:
    env = deployed(cfg).env()
    if os.environ.get("ENCORE_CONFIG"):
        env["ENCORE_CONFIG"] = os.environ["ENCORE_CONFIG"]
    return env


def _running(cfg: EncoreConfig) -> list[Service]:
    return [svc for svc in services(cfg) if processes.running_pid(svc.pid_file) is not None]


def _stop_services(cfg: EncoreConfig) -> None:
    for svc in reversed(services(cfg)):  # triggerer, dag-processor, scheduler, api-server, mlflow
        pid = processes.stop(svc.pid_file)
        if pid:
            print(f"{svc.name}: stopped (pid {pid})", flush=True)


def up(cfg: EncoreConfig, timeout_s: float = 300) -> None:
    """Start whatever is not running; idempotent. Services running with another config are restarted."""
    state = DeployState.of(cfg)
    for path in (state.logs, state.pids, state.mlflow_artifacts, state.airflow_home):
        path.mkdir(parents=True, exist_ok=True)
    _start_postgres(cfg)

    desired = _desired_config(cfg)
    previous = json.loads(state.services_config.read_text()) if state.services_config.is_file() else None
    if _running(cfg) and previous != desired:
        changed = sorted(k for k in set(desired) | set(previous or {}) if (previous or {}).get(k) != desired.get(k))
        print(f"config changed ({', '.join(changed[:6])}{' ...' if len(changed) > 6 else ''}): restarting the services",
              flush=True)
        _stop_services(cfg)
    state.services_config.write_text(json.dumps(desired, indent=1, sort_keys=True))

    env = service_env(cfg)
    passwords_file = Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    passwords_file.write_text(json.dumps({AIRFLOW_ADMIN: state.secret("airflow_admin_password")}) + "\n")
    passwords_file.chmod(0o600)
    todo = [svc for svc in services(cfg) if processes.running_pid(svc.pid_file) is None]
    for svc in todo:
        host, _, port = svc.address.partition(":")
        if port and not port_is_free(host, int(port)):
            raise DeployError(f"cannot start {svc.name}: {svc.address} is in use by another process "
                              f"(choose another port in [deploy] / ENCORE__DEPLOY__*_PORT)")
    if any(svc.name.startswith("airflow") for svc in todo):
        print("airflow: db migrate (metadata on Postgres) ...", flush=True)
        migrate_log = state.logs / "airflow-db-migrate.log"
        with open(migrate_log, "w") as out:
            done = subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, stdout=out,
                                  stderr=subprocess.STDOUT, cwd=REPO_ROOT)
        if done.returncode != 0:
            raise DeployError(f"airflow db migrate failed (exit {done.returncode}); log: {migrate_log}\n"
                              f"{_log_tail(migrate_log)}")
    for svc in todo:
        pid = processes.start(svc.command, env, svc.log_file, svc.pid_file, cwd=REPO_ROOT)
        print(f"{svc.name}: started (pid {pid}), log {svc.log_file}", flush=True)

    by_name = {svc.name: svc for svc in services(cfg)}
    started = time.monotonic()
    _wait("mlflow", lambda: mlflow_healthy(cfg), by_name["mlflow"], timeout_s)
    for name, component in (("airflow-api-server", "metadatabase"), ("airflow-scheduler", "scheduler"),
                            ("airflow-dag-processor", "dag_processor"), ("airflow-triggerer", "triggerer")):
        _wait(name, lambda c=component: airflow_health(cfg).get(c) == "healthy", by_name[name],
              max(30.0, timeout_s - (time.monotonic() - started)))
    print_status(cfg)


def down(cfg: EncoreConfig) -> None:
    """Stop every service this deployment started (by its PID); the data stays."""
    _stop_services(cfg)
    pid = postgres_server(cfg).stop()
    if pid:
        print(f"postgres: stopped (pid {pid}); data kept in {postgres_server(cfg).data_dir}", flush=True)
    print(f"deployment stopped; state kept in {DeployState.of(cfg).root}", flush=True)


def print_status(cfg: EncoreConfig) -> bool:
    """Print one line per service (PID, address, health, log); True when all are healthy."""
    state = DeployState.of(cfg)
    healthy = health(cfg)
    server = postgres_server(cfg)
    rows = [("postgres", server.pid(), f"{cfg.deploy.host}:{cfg.deploy.pg_port}", server.log_file)]
    rows += [(svc.name, processes.running_pid(svc.pid_file), svc.address, svc.log_file) for svc in services(cfg)]
    print(f"\n{'service':<22} {'pid':>7}  {'address':<17} {'health':<9} log")
    for name, pid, address, log_file in rows:
        print(f"{name:<22} {pid or '-':>7}  {address:<17} {'healthy' if healthy[name] else 'DOWN':<9} {log_file}")
    d = cfg.deploy
    print(f"\nAirflow UI:   http://{d.host}:{d.airflow_port}  (user {AIRFLOW_ADMIN}, password in "
          f"{state.secrets / 'airflow_admin_password'})")
    print(f"MLflow UI:    http://{d.host}:{d.mlflow_port}")
    print(f"warehouse:    PGPASSFILE={state.pgpass} psql -h {d.host} -p {d.pg_port} -U {d.pg_analyst_user} {d.pg_database}")
    return all(healthy.values())
