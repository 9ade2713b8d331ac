"""The nightly stages for one logical date, as plain functions the DAG's tasks call.

Each stage reads its inputs from the lake / warehouse / MLflow, writes its
outputs there and returns a small JSON summary (for XCom and logs), so any
stage can be cleared and re-run alone for a date. ``overrides`` are config
sections from the DAG's params (e.g. ``{"inference": {"k": 10}}``).
"""

from __future__ import annotations

import logging
import subprocess

from encore.core import lake
from encore.core.config import EncoreConfig, load_config

log = logging.getLogger(__name__)


def config(overrides: dict | None = None) -> EncoreConfig:
    return load_config(**(overrides or {}))


def validate_raw(cfg: EncoreConfig, run_date: str) -> dict:
    from encore.ingest.daily import ingest_day

    return ingest_day(cfg, run_date)


def spark_jobs(cfg: EncoreConfig, run_date: str) -> dict:
    if cfg.spark.mode == "submit":  # the same jobs on a cluster, as SparkSubmitOperator would launch them
        from spark_jobs.submit import submit_command, submit_env, submitted_stats

        command = submit_command(cfg, run_date)
        done = subprocess.run(command, check=True, env=submit_env(cfg), stdout=subprocess.PIPE, text=True)
        return {**submitted_stats(done.stdout), "submitted": " ".join(command)}
    from spark_jobs.pipeline import run_night

    return run_night(cfg, run_date)


def dbt_features(cfg: EncoreConfig, run_date: str) -> dict:
    from encore.features.dbt_runner import FEATURES, dbt_build

    summary = dbt_build(cfg, run_date, selector=FEATURES)
    return {"counts": summary["counts"], "elapsed_s": summary["elapsed_s"]}


def validate_features(cfg: EncoreConfig, run_date: str) -> dict:
    from validations.features import validate_features as check

    return check(cfg, run_date)


def train(cfg: EncoreConfig, run_date: str, model_name: str) -> dict:
    from training.train import train_model

    result = train_model(cfg, run_date, model_name)
    return {k: result[k] for k in ("model_name", "model_version", "run_id", "valid", "best_epoch")}


def promote(cfg: EncoreConfig, run_date: str, trained: list[dict]) -> dict:
    """Tonight's best model (validation ``cfg.promotion.metric``) challenges the champion."""
    from training.promotion import promote as run_gate
    from training.train import evaluate_registered_version

    metric = cfg.promotion.metric
    best = max(trained, key=lambda r: r["valid"][metric])
    decision = run_gate(
        cfg, run_date, str(best["model_version"]),
        evaluate=lambda version: evaluate_registered_version(cfg, run_date, version, split="valid"),
    )
    return {"challenger": best["model_name"], "challenger_version": decision.challenger_version,
            "promoted": decision.promoted, "reason": decision.reason}


def batch_inference(cfg: EncoreConfig, run_date: str) -> dict:
    from training.batch_inference import recommend_with_champion

    recs = recommend_with_champion(cfg, run_date)
    lake.write_partition(cfg, "recommendations_staged", run_date, recs)
    return {"rows": recs.num_rows, "users": len(set(recs.column("user_id").to_pylist())),
            "model": f"{recs.column('model_name')[0]} v{recs.column('model_version')[0]}" if recs.num_rows else None}


def validate_recommendations(cfg: EncoreConfig, run_date: str) -> dict:
    from encore.core.warehouse import connect
    from validations.recommendations import validate_recommendations as check

    recs = lake.read_partition(cfg, "recommendations_staged", run_date)
    active_users = lake.read_partition(cfg, "sequences", run_date).column("user_id").to_pylist()
    with connect(cfg, read_only=True) as con:
        items = [r[0] for r in con.execute("SELECT item_id FROM dim_items WHERE run_date = ?", [run_date]).fetchall()]
    return check(recs, active_users, items, cfg.inference.k)


def publish(cfg: EncoreConfig, run_date: str) -> dict:
    from encore.core.warehouse import publish_recommendations

    recs = lake.read_partition(cfg, "recommendations_staged", run_date)
    return {"published_rows": publish_recommendations(cfg, run_date, recs), "warehouse": cfg.paths.warehouse}


def dbt_analyst(cfg: EncoreConfig, run_date: str) -> dict:
    from encore.features.dbt_runner import ANALYST, dbt_build

    summary = dbt_build(cfg, run_date, selector=ANALYST)
    return {"counts": summary["counts"], "elapsed_s": summary["elapsed_s"]}


def report(cfg: EncoreConfig, run_date: str) -> dict:
    from encore.nightly.report import build_report

    return {"report": str(build_report(cfg, run_date))}
