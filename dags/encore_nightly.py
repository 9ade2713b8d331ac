"""encore_nightly: one run per logical date D turns D's raw events into published next-K recommendations.

validate raw → Spark (sessions, sequences, PHNS pools) → dbt feature marts (tests gate
training) → validate features → train each model (mapped) → promotion gate →
batch inference with the champion → validate recommendations → publish → dbt
analyst marts → report.

Every task reads its inputs from the lake / warehouse / MLflow and writes its
outputs there (only small summaries travel through XCom), so any task can be
cleared and re-run alone for a date. The work itself lives in ``encore.nightly.stages``.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Asset, Param, dag, get_current_context, task

from encore.nightly import stages as nightly

RECOMMENDATIONS = Asset("duckdb://encore/main/recommendations")
DEFAULTS = nightly.config()  # param defaults follow the config (ENCORE_CONFIG / ENCORE__* env)

DEFAULT_ARGS = {
    "retries": 2,
    "retry_delay": dt.timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": dt.timedelta(minutes=10),
    "execution_timeout": dt.timedelta(minutes=30),
}
LONG = {"execution_timeout": dt.timedelta(hours=2)}


def _stage() -> tuple:
    """(config with this run's params applied, run date)."""
    context = get_current_context()
    params = context["params"]
    overrides = {"inference": {"k": params["k"]}, "phns": {"default_mix": params["phns_mix"]}}
    return nightly.config(overrides), context["ds"]


@dag(
    dag_id="encore_nightly",
    schedule="@daily",
    start_date=dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc),
    catchup=True,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params={
        "k": Param(DEFAULTS.inference.k, type="integer", minimum=1, description="recommendations per user"),
        "models": Param(list(DEFAULTS.training.models), type="array", description="challengers trained tonight"),
        "phns_mix": Param(DEFAULTS.phns.default_mix, enum=[*DEFAULTS.phns.mixes, "UNIFORM"],
                          description="PHNS negative mix"),
    },
    tags=["encore"],
    doc_md=__doc__,
)
def encore_nightly():
    @task
    def validate_raw() -> dict:
        return nightly.validate_raw(*_stage())

    @task(**LONG)
    def spark_sessionize_and_pools(raw: dict) -> dict:
        return nightly.spark_jobs(*_stage())

    @task
    def dbt_feature_marts(spark: dict) -> dict:
        return nightly.dbt_features(*_stage())

    @task
    def validate_features(marts: dict) -> list[str]:
        nightly.validate_features(*_stage())
        return list(get_current_context()["params"]["models"])

    @task(**LONG)
    def train(model_name: str) -> dict:
        return nightly.train(*_stage(), model_name)

    @task
    def promote(trained: list[dict]) -> dict:
        return nightly.promote(*_stage(), list(trained))

    @task(**LONG)
    def batch_inference(decision: dict) -> dict:
        return nightly.batch_inference(*_stage())

    @task
    def validate_recommendations(recs: dict) -> dict:
        return nightly.validate_recommendations(*_stage())

    @task(outlets=[RECOMMENDATIONS])
    def publish(checked: dict) -> dict:
        return nightly.publish(*_stage())

    @task
    def dbt_analyst_marts(published: dict) -> dict:
        return nightly.dbt_analyst(*_stage())

    @task
    def report(marts: dict) -> dict:
        return nightly.report(*_stage())

    models = validate_features(dbt_feature_marts(spark_sessionize_and_pools(validate_raw())))
    decision = promote(train.expand(model_name=models))
    published = publish(validate_recommendations(batch_inference(decision)))
    report(dbt_analyst_marts(published))


encore_nightly()
