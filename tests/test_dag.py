"""The DAG file, parsed the way Airflow parses it (fast: nothing runs), and the stage helpers
the DAG relies on: param checks, the start date, which failures are not retried."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from encore.core.errors import ConfigError, NoEventsError
from encore.nightly import stages

ROOT = Path(__file__).resolve().parent.parent

PARSE = """
import json
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.exceptions import ParamValidationError
bag = DagBag(dag_folder="{dags}")
dag = bag.dags["encore_nightly"]
rejected = {{}}
for name, value in [("models", ["nope"]), ("models", []), ("k", 0), ("phns_mix", "x'); drop")]:
    try:
        dag.params.get_param(name).resolve(value)
        rejected[name + "=" + json.dumps(value)] = False
    except ParamValidationError:
        rejected[name + "=" + json.dumps(value)] = True
print(json.dumps({{"errors": {{k: str(v) for k, v in bag.import_errors.items()}},
                  "tasks": sorted(t.task_id for t in dag.tasks), "start": dag.start_date.date().isoformat(),
                  "rejected": rejected}}))
"""


def test_dag_parses_with_its_tasks_and_param_schema(tmp_path):
    landing = tmp_path / "encore" / "landing" / "movielens" / "dt=1997-09-20"
    landing.mkdir(parents=True)
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "ENCORE_HOME": str(tmp_path / "encore")}
    out = subprocess.run([sys.executable, "-c", PARSE.format(dags=ROOT / "dags")], env=env, capture_output=True,
                         text=True, check=True, timeout=300)
    parsed = json.loads(out.stdout.strip().splitlines()[-1])
    assert parsed["errors"] == {}
    assert parsed["tasks"] == sorted([
        "validate_raw", "spark_sessionize_and_pools", "dbt_feature_marts", "validate_features", "train", "promote",
        "batch_inference", "validate_recommendations", "publish", "dbt_analyst_marts", "report"])
    assert parsed["start"] == "1997-09-20"  # the earliest landed day: a 1997 dataset runs on 1997 dates
    assert all(parsed["rejected"].values()), parsed["rejected"]


def test_start_date_from_config_else_landing_else_embedded(cfg):
    assert stages.dag_start_date(cfg).isoformat() == cfg.data.start_date  # nothing landed
    Path(cfg.landing_path("2018-07-15", "mssd")).mkdir(parents=True)
    Path(cfg.landing_path("2018-07-14", "other")).mkdir(parents=True)
    assert stages.dag_start_date(cfg).isoformat() == "2018-07-14"
    cfg.ingest.sources = ("mssd",)
    assert stages.dag_start_date(cfg).isoformat() == "2018-07-15"
    cfg.schedule.start_date = "2018-01-01"
    assert stages.dag_start_date(cfg).isoformat() == "2018-01-01"


@pytest.mark.parametrize("params, message", [
    ({"models": [], "k": 20, "phns_mix": "MEDIUM"}, "at least one model"),
    ({"models": ["sasrec", "gpt"], "k": 20, "phns_mix": "MEDIUM"}, "unknown ['gpt']"),
    ({"models": ["sasrec", "sasrec"], "k": 20, "phns_mix": "MEDIUM"}, "listed twice"),
    ({"models": ["sasrec"], "k": 0, "phns_mix": "MEDIUM"}, "k: 0 is not an integer"),
    ({"models": ["sasrec"], "k": "5; drop table", "phns_mix": "MEDIUM"}, "k: '5; drop table'"),
    ({"models": ["sasrec"], "k": 20, "phns_mix": "../../etc"}, "phns_mix: '../../etc' is not one of"),
])
def test_bad_params_are_rejected_before_any_work(cfg, params, message):
    with pytest.raises(ConfigError, match="rejected params") as err:
        stages.validate_raw(cfg, dt.date(2026, 10, 5), params)  # before it looks for landing files
    assert message in str(err.value)


def test_only_transient_failures_are_retried():
    from encore.features.dbt_runner import DbtBuildError
    from validations.gx import ValidationFailed

    assert stages.is_deterministic(NoEventsError("no events"))
    assert stages.is_deterministic(ConfigError("bad"))
    assert stages.is_deterministic(ValidationFailed("recommendations", []))
    assert stages.is_deterministic(DbtBuildError("test failed", failures=[{"name": "unique_x"}]))
    assert stages.is_deterministic(FloatingPointError("loss is nan"))
    assert not stages.is_deterministic(DbtBuildError("Could not set lock on file", failures=[{"name": "m"}]))
    assert not stages.is_deterministic(DbtBuildError("connection refused"))
    assert not stages.is_deterministic(OSError("disk hiccup"))
