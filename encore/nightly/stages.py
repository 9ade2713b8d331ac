"""The nightly stages for one logical date, as plain functions the DAG's tasks call.

``run_date`` is a ``datetime.date`` from here inward (the DAG converts its ``ds`` once).

Each stage reads its inputs from the lake / warehouse / MLflow, writes its
outputs there and returns a small JSON summary (for XCom and logs), so any
stage can be cleared and re-run alone for a date. ``overrides`` are config
sections from the DAG's params (e.g. ``{"inference": {"k": 10}}``).
"""

from __future__ import annotations

import datetime as dt
import logging
import subprocess

import pyarrow as pa

from encore.core import lake
from encore.core.config import EncoreConfig, load_config
from encore.core.errors import ConfigError, EncoreInputError

log = logging.getLogger(__name__)


def config(overrides: dict | None = None) -> EncoreConfig:
    return load_config(**(overrides or {}))


def dag_start_date(cfg: EncoreConfig) -> dt.date:
    """The DAG's start date: ``schedule.start_date``, else the earliest landed day of the
    night's sources, else the embedded dataset's first day (nothing landed yet)."""
    from encore.ingest.landing import landed_dates

    if cfg.schedule.start_date:
        return dt.date.fromisoformat(cfg.schedule.start_date)
    landed = landed_dates(cfg)
    return dt.date.fromisoformat(landed[0] if landed else cfg.data.start_date)


def known_models() -> tuple[str, ...]:
    from training.registry import MODEL_NAMES

    return MODEL_NAMES


def check_params(cfg: EncoreConfig, params: dict) -> None:
    """Reject a run's params before any work (the DAG's param schema says the same; this also
    covers a run triggered with a conf that bypassed it)."""
    models = params.get("models")
    unknown = [m for m in models or [] if m not in known_models()]
    problems = []
    if not models:
        problems.append("models: at least one model must be trained")
    if unknown:
        problems.append(f"models: unknown {unknown}; known: {list(known_models())}")
    if len(set(models or [])) != len(models or []):
        problems.append(f"models: listed twice in {models}")
    mixes = [*cfg.phns.mixes, "UNIFORM"]
    if params.get("phns_mix") not in mixes:
        problems.append(f"phns_mix: {params.get('phns_mix')!r} is not one of {mixes}")
    k = params.get("k")
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        problems.append(f"k: {k!r} is not an integer in [1, {MAX_K}]")
    if problems:
        raise ConfigError("rejected params: " + "; ".join(problems))


MAX_K = 1000


def is_deterministic(exc: BaseException) -> bool:
    """Whether a stage failure would fail the same way on a retry: bad input, config or params,
    a data check that failed, a dbt test that failed, a model that cannot be trained or served.
    A lock, a timeout or a lost connection is not."""
    from encore.core.warehouse import PublishError
    from encore.features.dbt_runner import DbtBuildError
    from validations.gx import ValidationFailed

    if isinstance(exc, (EncoreInputError, ValidationFailed, PublishError, FloatingPointError, LookupError)):
        return True
    if isinstance(exc, DbtBuildError):
        return bool(exc.failures) and "lock" not in str(exc).lower()
    return False


def validate_raw(cfg: EncoreConfig, run_date: dt.date, params: dict | None = None) -> dict:
    """The night's first task: reject bad run params, then ingest the date's landing files; a
    night with no clean event to learn from fails here, saying why, and yesterday's
    recommendations stay published."""
    from encore.core.errors import NoEventsError
    from encore.ingest.daily import ingest_day

    if params is not None:
        check_params(cfg, params)
    summary = ingest_day(cfg, run_date)
    if summary["clean_rows"] == 0:
        if summary["raw_rows"] == 0:
            raise NoEventsError(f"no events for {run_date}: the landing files hold 0 rows ({', '.join(summary['files'])})")
        reasons = ", ".join(f"{why}: {n}" for why, n in sorted(summary["quarantine_reasons"].items()))
        raise NoEventsError(f"no new events for {run_date}: all {summary['raw_rows']} rows were quarantined "
                            f"({reasons}); see {cfg.lake_path('quarantine', run_date)}")
    return summary


def spark_jobs(cfg: EncoreConfig, run_date: dt.date) -> dict:
    if cfg.spark.mode == "submit":  # the same jobs on a cluster, as SparkSubmitOperator would launch them
        from spark_jobs.submit import submit_command, submit_env, submitted_stats

        command = submit_command(cfg, run_date)
        done = subprocess.run(command, check=True, env=submit_env(cfg), stdout=subprocess.PIPE, text=True)
        return {**submitted_stats(done.stdout), "submitted": " ".join(command)}
    from spark_jobs.pipeline import run_night

    return run_night(cfg, run_date)


def dbt_features(cfg: EncoreConfig, run_date: dt.date) -> dict:
    from encore.features.dbt_runner import FEATURES, dbt_build

    summary = dbt_build(cfg, run_date.isoformat(), selector=FEATURES)
    return {"counts": summary["counts"], "elapsed_s": summary["elapsed_s"]}


def validate_features(cfg: EncoreConfig, run_date: dt.date) -> dict:
    from validations.features import validate_features as check

    return check(cfg, run_date)


def train(cfg: EncoreConfig, run_date: dt.date, model_name: str) -> dict:
    """Fit one model on the run date's marts; sequence models on ``training.world_size``
    torchrun processes when it is above 1 (baselines always fit in this process). The runs
    name the night's sources as their dataset (MLflow, ``model_runs``, the leaderboard)."""
    from encore.ingest.landing import night_sources
    from training.launch import train_with_torchrun
    from training.registry import SEQUENCE_MODELS
    from training.train import train_model

    dataset = "+".join(night_sources(cfg)) or None
    if cfg.training.world_size > 1 and model_name in SEQUENCE_MODELS:
        result = train_with_torchrun(cfg, run_date, model_name, dataset=dataset)
    else:
        result = train_model(cfg, run_date, model_name, dataset=dataset)
    return {k: result[k] for k in ("model_name", "model_version", "run_id", "valid", "best_epoch")}


def promote(cfg: EncoreConfig, run_date: dt.date, trained: list[dict]) -> dict:
    """Tonight's best sane model (validation ``cfg.promotion.metric``) challenges the champion.

    Models that fail the sanity floor (``training.promotion.sanity_problems``: non-finite or
    constant scores, far below the most-popular baseline) never challenge; if none is left,
    the champion stays and the decision says why."""
    from training.promotion import promote as run_gate
    from training.promotion import record_no_challenger, sanity_problems
    from training.train import evaluate_popularity, evaluate_registered_version

    p = cfg.promotion
    popularity = evaluate_popularity(cfg, run_date)[p.metric]
    rejected = {}
    for result in trained:
        problems = sanity_problems(result["valid"], p.metric, popularity=popularity,
                                   popularity_floor=p.popularity_floor, min_score_std=p.min_score_std)
        if problems:
            rejected[result["model_name"]] = "; ".join(problems)
            log.warning("%s v%s cannot challenge: %s", result["model_name"], result["model_version"], rejected[result["model_name"]])
    sane = [r for r in trained if r["model_name"] not in rejected]
    if not sane:
        decision = record_no_challenger(cfg, run_date, rejected)
        return {"challenger": None, "challenger_version": None, "promoted": False, "reason": decision.reason}
    best = max(sane, key=lambda r: r["valid"][p.metric])
    decision = run_gate(
        cfg, run_date, str(best["model_version"]),
        evaluate=lambda version: evaluate_registered_version(cfg, run_date, version, split="valid"),
        popularity=popularity,
    )
    return {"challenger": best["model_name"], "challenger_version": decision.challenger_version,
            "promoted": decision.promoted, "reason": decision.reason, "rejected": rejected}


def batch_inference(cfg: EncoreConfig, run_date: dt.date) -> dict:
    """The champion's next-K lists, staged for the recommendations check; the outcome models'
    held-out quality (p_skip log-loss, AUC, ECE; completion MAE) goes to the lake for the report."""
    import json

    from training.batch_inference import recommend_with_champion

    recs, outcome_metrics = recommend_with_champion(cfg, run_date)
    lake.write_partition(cfg, "recommendations_staged", run_date, recs)
    lake.write_partition(cfg, "outcome_models", run_date, pa.table({
        "run_date": [run_date], "metrics_json": [json.dumps(outcome_metrics)]}))
    return {"rows": recs.num_rows, "users": len(set(recs.column("user_id").to_pylist())),
            "model": f"{recs.column('model_name')[0]} v{recs.column('model_version')[0]}" if recs.num_rows else None,
            **{k: v for k, v in outcome_metrics.items() if k.startswith("skip_") and k != "reliability"}}


def validate_recommendations(cfg: EncoreConfig, run_date: dt.date) -> dict:
    """The GE gate on tonight's staged recommendations; on success records the checksum of
    exactly what was checked, which ``publish`` requires."""
    from encore.core.warehouse import query
    from validations.recommendations import validate_recommendations as check

    recs = lake.read_partition(cfg, "recommendations_staged", run_date)
    active_users = query(cfg, "SELECT user_id FROM fct_user_sequences WHERE run_date = ?",
                         [run_date]).column("user_id").to_pylist()
    items = query(cfg, "SELECT item_id FROM dim_items WHERE run_date = ?", [run_date]).column("item_id").to_pylist()
    summary = check(recs, active_users, items, cfg.inference.k)
    approval = pa.table({"run_date": [run_date.isoformat()], "rows": [recs.num_rows],
                         "checksum": [lake.table_checksum(recs)]})
    lake.write_partition(cfg, "recommendations_checked", run_date, approval)
    return summary


def publish(cfg: EncoreConfig, run_date: dt.date) -> dict:
    """Publish the staged recommendations, only if they are exactly what the gate checked."""
    from encore.core.warehouse import PublishError, publish_recommendations

    recs = lake.read_partition(cfg, "recommendations_staged", run_date)
    checked = (lake.read_partition(cfg, "recommendations_checked", run_date).to_pylist()
               if run_date.isoformat() in lake.partition_dates(cfg, "recommendations_checked") else [])
    if not checked or checked[0]["checksum"] != lake.table_checksum(recs):
        raise PublishError(f"recommendations for {run_date} have not passed validate_recommendations "
                           "(or changed since): run it first; the published rows are unchanged")
    return {"published_rows": publish_recommendations(cfg, run_date, recs), "warehouse": cfg.paths.warehouse}


def dbt_analyst(cfg: EncoreConfig, run_date: dt.date) -> dict:
    from encore.core.warehouse import refresh_analyst_copy
    from encore.features.dbt_runner import ANALYST, dbt_build

    summary = dbt_build(cfg, run_date.isoformat(), selector=ANALYST)
    return {"counts": summary["counts"], "elapsed_s": summary["elapsed_s"], **refresh_analyst_copy(cfg)}


def report(cfg: EncoreConfig, run_date: dt.date) -> dict:
    from encore.nightly.report import build_report

    return {"report": str(build_report(cfg, run_date))}
