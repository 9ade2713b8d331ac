"""``encore deploy test``: two nights through the real scheduler of the deployment, checked end to end.

1. The deployment runs with the test settings (:func:`test_config`: the embedded dataset at a
   small size, its own data folder ``deploy/test-data``, warehouse database and registered
   model, all recreated so every run starts clean); ``up`` restarts the services if they ran
   with other settings.
2. The dataset is generated and the days before the first night ingested as history.
3. An analyst connects to the warehouse (read-only role) and keeps that one connection open,
   reading ``recommendations`` per run date in a loop for the whole test.
4. The DAG is unpaused and the last two days are triggered through the api-server's REST API,
   one after the other; then the first is cleared and re-run.
5. Checks: every run and task succeeded; each date has K rows per active user in the Postgres
   ``recommendations``; the re-run left the table identical; the ``champion`` / ``challenger``
   aliases on the MLflow server are the versions the nights decided and published; the dbt
   tasks ran their tests without failure; the analyst never failed and only ever saw complete
   dates. Wall time per task and rows per date are printed and saved in
   ``deploy/test-report.json``.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
import logging
import os
import shutil
import threading
import time
from pathlib import Path

import psycopg2
from mlflow import MlflowClient

from encore.core import lake, postgres
from encore.core.config import EncoreConfig
from encore.deploy import services
from encore.deploy.airflow_api import AirflowApi
from encore.deploy.state import DeployState

log = logging.getLogger(__name__)
DAG_ID = "encore_nightly"
# A night of about a minute or two on two cores (the sizes of tests/test_e2e_dag.py).
TEST_SETTINGS = {
    "data": {"n_users": 60, "n_items": 120, "n_days": 7, "sessions_per_user_day": 0.8},
    "training": {"epochs": 2, "hidden": 32, "heads": 2, "n_sampled": 50},
    "inference": {"k": 5},
    "phns": {"n_negatives": 10},
    "deploy": {"pg_database": "encore_deploy_test"},
    "promotion": {"registered_model": "encore_recommender_deploy_test"},
}
COMPARED = ("run_date, user_id, rank, item_id, score, soft_label, p_skip, predicted_completion, "
            "model_name, model_version")  # created_at is when a row was written: a re-run renews it


def test_config(cfg: EncoreConfig) -> EncoreConfig:
    """``cfg`` with the test settings; every data path under ``<home>/...`` moves to ``deploy/test-data``."""
    out = copy.deepcopy(cfg)
    home, data_home = Path(cfg.paths.home), DeployState.of(cfg).root / "test-data"
    for field in dataclasses.fields(out.paths):
        value = getattr(out.paths, field.name)
        if field.name != "home" and value.startswith(f"{home}/"):
            setattr(out.paths, field.name, str(data_home / Path(value).relative_to(home)))
    for section, values in TEST_SETTINGS.items():
        for name, value in values.items():
            setattr(getattr(out, section), name, value)
    return out


class AnalystReader(threading.Thread):
    """One analyst connection, held open for the whole test, reading counts per date in a loop."""

    def __init__(self, cfg: EncoreConfig, pause_s: float = 0.2):
        super().__init__(name="analyst-reader", daemon=True)
        self.cfg, self.pause_s = cfg, pause_s
        self.snapshots: list[dict[str, int]] = []
        self.errors: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        try:
            con = postgres.connect(self.cfg, user=self.cfg.deploy.pg_analyst_user)
        except postgres.WarehouseUnavailable as exc:
            self.errors.append(str(exc))
            return
        con.set_session(readonly=True, autocommit=True)
        try:
            with con.cursor() as cur:
                while not self.stopping.is_set():
                    try:
                        cur.execute("SELECT run_date::text, count(*) FROM recommendations GROUP BY run_date")
                        self.snapshots.append(dict(cur.fetchall()))
                    except psycopg2.errors.UndefinedTable:
                        self.snapshots.append({})  # before the first publish
                    except psycopg2.Error as exc:
                        self.errors.append(f"{type(exc).__name__}: {str(exc).strip()}")
                    time.sleep(self.pause_s)
        finally:
            con.close()


def _reset(cfg: EncoreConfig, api: AirflowApi, dates: list[str]) -> None:
    """Start clean: the test's data folder, its runs in Airflow, its registered model."""
    shutil.rmtree(DeployState.of(cfg).root / "test-data", ignore_errors=True)
    for day in dates:
        for run in api.runs_on(DAG_ID, dt.date.fromisoformat(day)):
            api.delete_run(DAG_ID, run["dag_run_id"])
    client = MlflowClient(cfg.paths.mlflow_tracking_uri)
    if client.search_registered_models(f"name = '{cfg.promotion.registered_model}'"):
        client.delete_registered_model(cfg.promotion.registered_model)


def _prepare_data(cfg: EncoreConfig, first_night: str) -> None:
    from encore.ingest.daily import ingest_day
    from encore.ingest.generator import write_landing

    write_landing(cfg)
    history = [d for d in sorted(p.name[3:] for p in Path(cfg.landing_path(first_night)).parent.glob("dt=*"))
               if d < first_night]
    for day in history:
        summary = ingest_day(cfg, day)
        print(f"history {day}: {summary['clean_rows']} clean events", flush=True)


def _published(cfg: EncoreConfig) -> list[tuple]:
    con = postgres.connect(cfg)
    try:
        with con.cursor() as cur:
            cur.execute(f"SELECT {COMPARED} FROM recommendations ORDER BY run_date, user_id, rank")
            return cur.fetchall()
    finally:
        con.close()


def _night(api: AirflowApi, run_id: str, timeout_s: float, clear: bool = False, day: str | None = None) -> dict:
    """Trigger (or clear and re-run) one night and wait for it; its state and wall time per task."""
    started = time.monotonic()
    if clear:
        api.clear_run(DAG_ID, run_id)
    else:
        api.trigger(DAG_ID, run_id, dt.date.fromisoformat(day))
    seen: dict[str, str] = {}

    def progress(run: dict, tis: list[dict]) -> None:
        for ti in tis:
            key = ti["task_id"] + (f"[{ti['map_index']}]" if ti["map_index"] >= 0 else "")
            if ti["state"] != seen.get(key) and ti["state"] in ("running", "success", "failed", "up_for_retry"):
                print(f"  {run_id} {key}: {ti['state']}"
                      + (f" ({ti['duration']:.0f} s)" if ti["state"] == "success" and ti.get("duration") else ""),
                      flush=True)
            seen[key] = ti["state"]

    run = api.wait_for_run(DAG_ID, run_id, timeout_s, progress)
    tis = api.task_instances(DAG_ID, run_id)
    return {
        "run_id": run_id,
        "state": run["state"],
        "wall_s": round(time.monotonic() - started, 1),
        "tasks": {ti["task_id"] + (f"[{ti['map_index']}]" if ti["map_index"] >= 0 else ""):
                  {"state": ti["state"], "duration_s": round(ti["duration"] or 0, 1), "start": ti["start_date"]}
                  for ti in sorted(tis, key=lambda ti: ti["start_date"] or "~")},
        "dbt": {task: api.xcom(DAG_ID, run_id, task)["counts"] for task in ("dbt_feature_marts", "dbt_analyst_marts")
                if run["state"] == "success"},
    }


def _check(checks: list[tuple[str, bool, str]], name: str, ok: bool, detail: str) -> None:
    checks.append((name, ok, detail))
    print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}", flush=True)


def run_deploy_test(cfg: EncoreConfig, run_timeout_s: float = 1200) -> bool:
    tcfg = services.deployed(test_config(cfg))
    state = DeployState.of(cfg)
    last = dt.date.fromisoformat(tcfg.data.start_date) + dt.timedelta(days=tcfg.data.n_days - 1)
    dates = [(last - dt.timedelta(days=1)).isoformat(), last.isoformat()]  # the dataset's last two days
    started = time.monotonic()
    services.up(test_config(cfg))
    up_at = dt.datetime.now(dt.timezone.utc)
    os.environ["PGPASSFILE"] = str(state.pgpass)
    os.environ.pop(postgres.PASSWORD_ENV, None)  # this test connects as the deployment's roles
    api = AirflowApi(f"http://{cfg.deploy.host}:{cfg.deploy.airflow_port}", services.AIRFLOW_ADMIN,
                     state.secret("airflow_admin_password"))
    api.wait_for_dag(DAG_ID, parsed_after=up_at)
    _reset(tcfg, api, dates)
    server = services.postgres_server(cfg)
    server.sql(f'DROP DATABASE IF EXISTS "{tcfg.deploy.pg_database}" WITH (FORCE);')
    services.up(test_config(cfg))  # recreates the test warehouse database and its grants
    _prepare_data(tcfg, dates[0])

    reader = AnalystReader(tcfg)
    reader.start()
    api.set_paused(DAG_ID, False)
    nights: list[dict] = []
    before_rerun = after_rerun = []
    try:
        for day in dates:
            print(f"night {day}: triggered through the REST API", flush=True)
            nights.append(_night(api, f"deploy_test__{day}", run_timeout_s, day=day))
            if nights[-1]["state"] != "success":
                break
        else:
            before_rerun = _published(tcfg)
            print(f"night {dates[0]}: cleared and re-run", flush=True)
            nights.append(_night(api, f"deploy_test__{dates[0]}", run_timeout_s, clear=True) | {"rerun": True})
            after_rerun = _published(tcfg)
    finally:
        api.set_paused(DAG_ID, True)
        reader.stopping.set()
        reader.join(timeout=10)

    checks: list[tuple[str, bool, str]] = []
    for night in nights:
        failed = sorted(t for t, ti in night["tasks"].items() if ti["state"] != "success")
        _check(checks, f"run {night['run_id']}{' (re-run)' if night.get('rerun') else ''}",
               night["state"] == "success" and not failed,
               f"state {night['state']}, {len(night['tasks'])} tasks, failed: {failed or 'none'}, {night['wall_s']} s")
    rows_per_date = {}
    if len(nights) == 3 and all(ok for _, ok, _ in checks):
        rows_per_date = _check_results(checks, tcfg, dates, nights, before_rerun, after_rerun, reader)
    else:
        print(f"task logs: {state.airflow_home / 'logs'}; service logs: {state.logs}", flush=True)

    report = {"dates": dates, "k": tcfg.inference.k, "rows_per_date": rows_per_date, "nights": nights,
              "analyst_reads": len(reader.snapshots), "total_s": round(time.monotonic() - started, 1),
              "checks": [{"name": n, "ok": ok, "detail": d} for n, ok, d in checks]}
    (state.root / "test-report.json").write_text(json.dumps(report, indent=1))
    _print_times(nights)
    ok = len(nights) == 3 and all(ok for _, ok, _ in checks)
    print(f"\ndeploy test {'PASSED' if ok else 'FAILED'} in {report['total_s']:.0f} s; report {state.root / 'test-report.json'}")
    return ok


def _check_results(checks: list, tcfg: EncoreConfig, dates: list[str], nights: list[dict], before_rerun: list,
                   after_rerun: list, reader: AnalystReader) -> dict[str, int]:
    """The checks on what the successful nights left: table, aliases, dbt tests, the analyst's reads."""
    from training.promotion import champion_for_date, recorded_decision

    k = tcfg.inference.k
    rows_per_date = {}
    for day in dates:
        users = len(set(lake.read_partition(tcfg, "sequences", day).column("user_id").to_pylist()))
        rows = sum(1 for r in after_rerun if str(r[0]) == day)
        rows_per_date[day] = rows
        _check(checks, f"recommendations {day}", rows == k * users > 0, f"{rows} rows = K {k} x {users} active users")
    _check(checks, "re-run leaves the table identical", before_rerun == after_rerun and len(after_rerun) > 0,
           f"{len(before_rerun)} rows before, {len(after_rerun)} after (all columns but created_at)")

    client = MlflowClient(tcfg.paths.mlflow_tracking_uri)
    aliases = client.get_registered_model(tcfg.promotion.registered_model).aliases
    champion = champion_for_date(tcfg, dates[-1])
    published_versions = {r[9] for r in after_rerun if str(r[0]) == dates[-1]}
    _check(checks, "champion alias on the MLflow server", aliases.get("champion") == champion
           and published_versions == {champion}, f"aliases {aliases}; {dates[-1]} decided and published v{champion}")
    last = recorded_decision(tcfg, dates[-1])
    if last.challenger_version is not None:
        _check(checks, "challenger alias on the MLflow server", aliases.get("challenger") == last.challenger_version,
               f"challenger v{aliases.get('challenger')}, {dates[-1]}'s challenger v{last.challenger_version}")
    for night in nights:
        for task, counts in night["dbt"].items():
            _check(checks, f"dbt tests {night['run_id']} {task}",
                   not counts.get("error") and not counts.get("fail") and counts.get("pass", 0) > 0, str(counts))
    partial = [s for s in reader.snapshots if any(n != rows_per_date.get(day) for day, n in s.items())]
    _check(checks, "analyst reading through the nights", not reader.errors and not partial and len(reader.snapshots) > 0,
           f"one connection open {len(reader.snapshots)} reads, {len(reader.errors)} errors "
           f"{reader.errors[:2]}, {len(partial)} incomplete dates {partial[:2]}, "
           f"dates seen {sorted({d for s in reader.snapshots for d in s})}")
    return rows_per_date


def _print_times(nights: list[dict]) -> None:
    tasks = list(dict.fromkeys(t for n in nights for t in n["tasks"]))
    heads = [n["run_id"].split("__")[-1] + (" re-run" if n.get("rerun") else "") for n in nights]
    print(f"\n{'task (wall s)':<28}" + "".join(f"{h:>20}" for h in heads))
    for task in tasks:
        print(f"{task:<28}" + "".join(f"{n['tasks'].get(task, {}).get('duration_s', '-'):>20}" for n in nights))
    print(f"{'DAG run, trigger to end':<28}" + "".join(f"{n['wall_s']:>20}" for n in nights))

