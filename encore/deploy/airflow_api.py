"""The few calls of Airflow's REST API (v2) deployed mode makes, as the simple auth manager's admin."""

from __future__ import annotations

import datetime as dt
import time

import requests


class AirflowApiError(RuntimeError):
    """A REST call failed; the message holds the method, the path, the status and Airflow's answer."""


class AirflowApi:
    def __init__(self, base_url: str, username: str, password: str, timeout_s: float = 30):
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.session = requests.Session()
        answer = self.session.post(f"{self.base_url}/auth/token", json={"username": username, "password": password},
                                   timeout=timeout_s)
        if not answer.ok:
            raise AirflowApiError(f"POST /auth/token as {username}: {answer.status_code} {answer.text[:300]}")
        self.session.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"

    def _call(self, method: str, path: str, ok: tuple[int, ...] = (200,), **kwargs) -> dict:
        answer = self.session.request(method, f"{self.base_url}/api/v2{path}", timeout=self.timeout_s, **kwargs)
        if answer.status_code not in ok:
            raise AirflowApiError(f"{method} /api/v2{path}: {answer.status_code} {answer.text[:500]}")
        return answer.json() if answer.content else {}

    def wait_for_dag(self, dag_id: str, parsed_after: dt.datetime, timeout_s: float = 300) -> dict:
        """The DAG once the dag-processor has parsed it after ``parsed_after`` (so its params
        follow the services' current config), without import errors."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                dag = self._call("GET", f"/dags/{dag_id}")
                parsed = dag.get("last_parsed_time")
                if parsed and dt.datetime.fromisoformat(parsed) > parsed_after and not dag.get("has_import_errors"):
                    return dag
            except AirflowApiError:
                pass
            if time.monotonic() > deadline:
                errors = self._call("GET", "/importErrors").get("import_errors", [])
                raise AirflowApiError(f"DAG {dag_id} not parsed after {timeout_s:.0f} s; import errors: {errors}")
            time.sleep(2)

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self._call("PATCH", f"/dags/{dag_id}", json={"is_paused": paused})

    def runs_on(self, dag_id: str, logical_date: dt.date) -> list[dict]:
        start = dt.datetime.combine(logical_date, dt.time(), dt.timezone.utc)
        params = {"logical_date_gte": start.isoformat(), "logical_date_lte": (start + dt.timedelta(hours=23)).isoformat()}
        return self._call("GET", f"/dags/{dag_id}/dagRuns", params=params)["dag_runs"]

    def delete_run(self, dag_id: str, run_id: str) -> None:
        self._call("DELETE", f"/dags/{dag_id}/dagRuns/{run_id}", ok=(204,))

    def trigger(self, dag_id: str, run_id: str, logical_date: dt.date) -> dict:
        when = dt.datetime.combine(logical_date, dt.time(), dt.timezone.utc).isoformat()
        return self._call("POST", f"/dags/{dag_id}/dagRuns", json={"dag_run_id": run_id, "logical_date": when})

    def clear_run(self, dag_id: str, run_id: str) -> None:
        """Re-run every task of the run (what 'Clear' does in the UI)."""
        self._call("POST", f"/dags/{dag_id}/dagRuns/{run_id}/clear", json={"dry_run": False})

    def run(self, dag_id: str, run_id: str) -> dict:
        return self._call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self._call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]

    def xcom(self, dag_id: str, run_id: str, task_id: str):
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
        return self._call("GET", path, params={"deserialize": "true"})["value"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout_s: float, progress=None) -> dict:
        """Poll until the run succeeds or fails; ``progress(run, task_instances)`` after each poll."""
        deadline = time.monotonic() + timeout_s
        while True:
            run = self.run(dag_id, run_id)
            if progress:
                progress(run, self.task_instances(dag_id, run_id))
            if run["state"] in ("success", "failed"):
                return run
            if time.monotonic() > deadline:
                raise AirflowApiError(f"DAG run {run_id} still {run['state']} after {timeout_s:.0f} s")
            time.sleep(5)
