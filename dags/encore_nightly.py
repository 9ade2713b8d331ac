"""encore_nightly: one run per logical date D turns D's raw events into published next-K recommendations.

Every task reads its inputs from the lake / warehouse / MLflow and writes its
outputs there (nothing large travels through XCom), so any task can be cleared
and re-run alone for a date. The work itself lives in ``encore.nightly``.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Asset, dag, get_current_context, task

from encore import nightly

RECOMMENDATIONS = Asset("duckdb://encore/recommendations")

DEFAULT_ARGS = {
    "retries": 2,
    "retry_delay": dt.timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": dt.timedelta(minutes=10),
    "execution_timeout": dt.timedelta(minutes=60),
}


def _run_date() -> str:
    return get_current_context()["ds"]


@dag(
    dag_id="encore_nightly",
    schedule="@daily",
    start_date=dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc),
    catchup=True,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["encore"],
    doc_md=__doc__,
)
def encore_nightly():
    @task
    def validate_raw() -> dict:
        return nightly.validate_raw(_run_date())

    @task
    def spark_sessionize_and_pools(raw_summary: dict) -> dict:
        return nightly.spark_jobs(_run_date())

    @task
    def dbt_feature_marts(spark_summary: dict) -> dict:
        return nightly.dbt_features(_run_date())

    @task
    def recommend(dbt_summary: dict) -> dict:
        return nightly.recommend(_run_date())

    @task(outlets=[RECOMMENDATIONS])
    def publish(recs_summary: dict) -> dict:
        return nightly.publish(_run_date())

    @task
    def report(publish_summary: dict, raw_summary: dict) -> dict:
        return nightly.report(_run_date())

    raw = validate_raw()
    published = publish(recommend(dbt_feature_marts(spark_sessionize_and_pools(raw))))
    report(published, raw)


encore_nightly()
