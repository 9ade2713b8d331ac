"""Run the dbt project (``dbt_project/``) for one run date.

The DAG calls :func:`dbt_build` twice per night::

    dbt_build(cfg, ds, selector=FEATURES)   # staging + intermediate + feature marts, before training
    dbt_build(cfg, ds, selector=ANALYST)    # analyst marts, after publish

and ``make docs`` calls :func:`dbt_docs`.

dbt runs as a subprocess of this interpreter (``python -c 'from dbt.cli.main import cli; cli()'``), not
in-process through ``dbtRunner``: dbt keeps process-global state (adapter
registry, flags, the DuckDB connection/plugin environment, the parsed manifest
cache) and reads ``env_var()`` from ``os.environ``. In one process, a second
invocation with another lake / warehouse (another run date in a backfill loop,
another test's tmp directory) would need ``os.environ`` mutated under it and can
reuse stale adapter state; dbt documents ``dbtRunner`` as unsafe for concurrent
or repeated use in one process. A subprocess gets the exact environment from
``cfg.env()``, cannot leak state into the Airflow worker, and costs ~1-2 s.

``target/`` and ``logs/`` go under ``ENCORE_HOME/dbt/`` so parallel runs with
different homes never share dbt's artifacts and the checkout stays clean.

The profile's target follows ``cfg.deploy.warehouse``: ``duckdb`` reads the lake in place,
``postgres`` (deployed mode) first loads the changed lake partitions into Postgres
(``encore.features.lake_to_postgres``); the models, tests and contracts are the same.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from encore.core.config import EncoreConfig, _iso
from encore.core.postgres import PASSWORD_ENV
from encore.features.lake_to_postgres import sync_lake

log = logging.getLogger(__name__)

FEATURES = "features"  # selector: staging + intermediate + feature marts (before training)
ANALYST = "analyst"  # selector: analyst marts over recommendations / model_runs (after publish)

_FAILED = {"error", "fail", "runtime error"}
# dbt's console entry point (what the venv's `dbt` script runs), started from this
# interpreter so it is the same venv whatever PATH says.
_DBT_MAIN = "import sys; from dbt.cli.main import cli; sys.argv[0] = 'dbt'; sys.exit(cli())"


class DbtBuildError(RuntimeError):
    """dbt failed; ``failures`` lists the failing nodes (models, tests) with dbt's messages."""

    def __init__(self, message: str, failures: list[dict[str, Any]] | None = None, result: dict | None = None):
        super().__init__(message)
        self.failures = failures or []
        self.result = result or {}


def project_dir() -> Path:
    """The dbt project: ``ENCORE_DBT_PROJECT_DIR`` if set, else ``dbt_project/`` of this checkout."""
    override = os.environ.get("ENCORE_DBT_PROJECT_DIR")
    return Path(override) if override else Path(__file__).resolve().parents[2] / "dbt_project"


def artifacts_dir(cfg: EncoreConfig) -> Path:
    """Where dbt writes target/ (manifest, run_results, docs) and logs/ for this home."""
    return Path(cfg.paths.home) / "dbt"


def _env(cfg: EncoreConfig) -> dict[str, str]:
    """dbt's environment: the config, and the profile's target (``deploy.warehouse``) with its
    connection settings (dbt_project/profiles.yml reads them; the password stays a secret)."""
    env = dict(os.environ)
    env.update(cfg.env())
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    env.setdefault("DO_NOT_TRACK", "1")
    env["ENCORE_DBT_TARGET"] = cfg.deploy.warehouse
    if cfg.deploy.warehouse == "postgres":
        env.update({
            "ENCORE_PG_HOST": cfg.deploy.host,
            "ENCORE_PG_PORT": str(cfg.deploy.pg_port),
            "ENCORE_PG_USER": cfg.deploy.pg_user,
            "ENCORE_PG_DBNAME": cfg.deploy.pg_database,
            "ENCORE_PG_LAKE_SCHEMA": cfg.deploy.pg_lake_schema,
        })
        if os.environ.get(PASSWORD_ENV):  # else libpq reads PGPASSFILE
            env["DBT_ENV_SECRET_ENCORE_PG_PASSWORD"] = os.environ[PASSWORD_ENV]
    return env


def dbt_vars(cfg: EncoreConfig, run_date: str) -> dict[str, Any]:
    """The project's vars for a run: the run date and every setting the marts read, from the
    config (dbt_project.yml's vars are only the defaults of a hand-run ``dbt build``)."""
    short, mid, long = cfg.features.window_days
    return {
        "run_date": run_date,
        "window_short_days": short,
        "window_mid_days": mid,
        "window_long_days": long,
        "next_k_soft_labels": list(cfg.training.soft_labels),
        "eval_negatives_per_pool": cfg.features.eval_negatives_per_pool,
        "eval_easy_mix": cfg.features.eval_easy_mix,
    }


def _invoke(cfg: EncoreConfig, command: list[str], run_date: str) -> tuple[subprocess.CompletedProcess, Path]:
    target = artifacts_dir(cfg) / "target"
    logs = artifacts_dir(cfg) / "logs"
    target.mkdir(parents=True, exist_ok=True)
    Path(cfg.paths.warehouse).parent.mkdir(parents=True, exist_ok=True)
    (target / "run_results.json").unlink(missing_ok=True)  # never report a previous run's results
    args = [
        sys.executable, "-c", _DBT_MAIN, *command,
        "--project-dir", str(project_dir()),
        "--profiles-dir", str(project_dir()),
        "--target-path", str(target),
        "--log-path", str(logs),
        "--vars", json.dumps(dbt_vars(cfg, run_date)),
    ]
    log.info("dbt %s (run_date=%s)", " ".join(command), run_date)
    proc = subprocess.run(args, env=_env(cfg), capture_output=True, text=True, check=False)
    return proc, target


def _summarise(target: Path) -> tuple[list[dict[str, Any]], float]:
    path = target / "run_results.json"
    if not path.exists():
        return [], 0.0
    data = json.loads(path.read_text())
    results = [
        {
            "unique_id": r["unique_id"],
            "name": r["unique_id"].split(".")[-1] if not r["unique_id"].startswith("test.") else r["unique_id"].split(".")[2],
            "resource_type": r["unique_id"].split(".")[0],
            "status": r["status"],
            "failures": r.get("failures"),
            "message": r.get("message"),
            "execution_time": r.get("execution_time"),
            "compiled_code": r.get("compiled_code"),
        }
        for r in data.get("results", [])
    ]
    return results, float(data.get("elapsed_time") or 0.0)


FAILING_ROWS_SHOWN = 5


def _failing_rows(cfg: EncoreConfig, result: dict[str, Any]) -> str:
    """The first rows a failed data test returned (they name what is wrong, e.g. the date and
    partition to re-run), read back by running its compiled SQL; empty if that is not possible."""
    if result["resource_type"] != "test" or result["status"] != "fail" or not result.get("compiled_code"):
        return ""
    from encore.core.warehouse import connect

    try:
        with connect(cfg, read_only=True) as con:
            cursor = con.execute(f"select * from ({result['compiled_code']}) as failing limit {FAILING_ROWS_SHOWN}")
            names = [d[0] for d in cursor.description]
            rows = cursor.fetchall()
    except Exception as exc:  # the samples only explain the failure; never hide it
        log.debug("could not read the failing rows of %s: %s", result["name"], exc)
        return ""
    return "".join("\n      " + ", ".join(f"{n}={v}" for n, v in zip(names, row)) for row in rows)


def dbt_build(
    cfg: EncoreConfig,
    run_date: str,
    select: str | None = None,
    exclude: str | None = None,
    *,
    selector: str | None = None,
    full_refresh: bool = False,
) -> dict[str, Any]:
    """``dbt build`` for ``run_date`` (YYYY-MM-DD): models, tests, in DAG order.

    ``select`` / ``exclude`` are dbt node selections (e.g. ``"+dim_items"``);
    ``selector`` names one of ``dbt_project/selectors.yml`` (:data:`FEATURES`,
    :data:`ANALYST`). Returns a summary dict (``counts`` by status, ``results``
    per node, ``elapsed_s``, ``target_path``). Raises :class:`DbtBuildError`
    naming every failing model / test when anything fails.
    """
    run_date = _iso(run_date)
    command = ["build"]
    if selector:
        command += ["--selector", selector]
    if select:
        command += ["--select", select]
    if exclude:
        command += ["--exclude", exclude]
    if full_refresh:
        command.append("--full-refresh")

    started = time.monotonic()
    if cfg.deploy.warehouse == "postgres":  # dbt-postgres reads the lake from tables, not files
        sync_lake(cfg)
    proc, target = _invoke(cfg, command, run_date)
    results, elapsed = _summarise(target)
    counts = dict(Counter(r["status"] for r in results))
    summary = {
        "run_date": run_date,
        "command": command,
        "success": proc.returncode == 0,
        "counts": counts,
        "results": results,
        "elapsed_s": elapsed or round(time.monotonic() - started, 2),
        "target_path": str(target),
    }
    log.info("dbt build run_date=%s: %s in %.1fs", run_date, counts, summary["elapsed_s"])

    failed = [r for r in results if r["status"] in _FAILED]
    if proc.returncode != 0 or failed:
        if failed:
            lines = [
                f"{r['resource_type']} {r['name']} [{r['status']}]: {(r['message'] or '').strip().splitlines()[0] if r['message'] else ''}"
                + _failing_rows(cfg, r)
                for r in failed
            ]
            skipped = counts.get("skipped", 0)
            message = (
                f"dbt build failed for run_date={run_date}: {len(failed)} failing node(s)"
                f"{f', {skipped} skipped downstream' if skipped else ''}:\n  " + "\n  ".join(lines)
            )
        else:  # failed before running anything (parse / compile / connection error)
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
            message = f"dbt build failed for run_date={run_date} (exit {proc.returncode}) before running nodes:\n{tail}"
        log.error(message)
        raise DbtBuildError(message, failures=failed, result=summary)
    return summary


def dbt_docs(cfg: EncoreConfig, run_date: str | None = None) -> dict[str, Any]:
    """``dbt docs generate``; returns where ``index.html`` / ``catalog.json`` are.

    The docs describe the warehouse as built, so run it after :func:`dbt_build`.
    ``run_date`` only has to satisfy compilation (defaults to today). Serve with
    ``dbt docs serve --project-dir dbt_project --profiles-dir dbt_project
    --target-path <target_path>`` or open ``index.html`` after copying the JSON
    files next to it (``dbt docs generate --static`` gives one self-contained file).
    """
    import datetime as dt

    run_date = _iso(run_date or dt.date.today())
    proc, target = _invoke(cfg, ["docs", "generate", "--static"], run_date)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise DbtBuildError(f"dbt docs generate failed (exit {proc.returncode}):\n{tail}")
    docs = {
        "target_path": str(target),
        "index_html": str(target / "index.html"),
        "static_index_html": str(target / "static_index.html"),
        "catalog_json": str(target / "catalog.json"),
    }
    log.info("dbt docs generated in %s", target)
    return docs


def dbt_clean(cfg: EncoreConfig) -> None:
    """Remove this home's dbt artifacts (target/, logs/)."""
    shutil.rmtree(artifacts_dir(cfg), ignore_errors=True)
