"""encore_nightly: one run per logical date D turns D's raw events into published next-K recommendations.

validate raw → Spark (sessions, sequences, PHNS pools) → dbt feature marts (tests gate
training) → validate features → train each model (mapped) → promotion gate →
batch inference with the champion → validate recommendations → publish → dbt
analyst marts → report.

Every task reads its inputs from the lake / warehouse / MLflow and writes its
outputs there (only small summaries travel through XCom), so any task can be
cleared and re-run alone for a date. The work itself lives in ``encore.nightly.stages``;
a failure that a retry cannot fix (bad input, params or data checks) fails the task at once.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Asset, Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from encore.nightly import stages

RECOMMENDATIONS = Asset("encore://warehouse/recommendations")  # the published table, DuckDB or Postgres
DEFAULTS = stages.config()  # param defaults follow the config (ENCORE_CONFIG / ENCORE__* env)

DEFAULT_ARGS = {
    "retries": 2,
    "retry_delay": dt.timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": dt.timedelta(minutes=10),
    "execution_timeout": dt.timedelta(minutes=30),
}
LONG = {"execution_timeout": dt.timedelta(hours=2)}


def _run(stage, *args):
    """Run a stage with this run's config and date; a deterministic failure is not retried."""
    context = get_current_context()
    params = context["params"]
    cfg = stages.config({"inference": {"k": params["k"]}, "phns": {"default_mix": params["phns_mix"]}})
    try:
        return stage(cfg, dt.date.fromisoformat(context["ds"]), *args)
    except Exception as exc:
        if stages.is_deterministic(exc):
            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
        raise


@dag(
    dag_id="encore_nightly",
    schedule="@daily",
    start_date=dt.datetime.combine(stages.dag_start_date(DEFAULTS), dt.time(), dt.timezone.utc),
    catchup=DEFAULTS.schedule.catchup,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params={
        "k": Param(DEFAULTS.inference.k, type="integer", minimum=1, maximum=stages.MAX_K,
                   description="recommendations per user"),
        "models": Param(list(DEFAULTS.training.models), type="array", minItems=1, uniqueItems=True,
                        items={"type": "string", "enum": list(stages.known_models())},
                        description="challengers trained tonight"),
        "phns_mix": Param(DEFAULTS.phns.default_mix, enum=[*DEFAULTS.phns.mixes, "UNIFORM"],
                          description="PHNS negative mix"),
    },
    tags=["encore"],
    doc_md=__doc__,
)
def encore_nightly():
    @task
    def validate_raw() -> dict:
        return _run(stages.validate_raw, get_current_context()["params"])

    @task(**LONG)
    def spark_sessionize_and_pools(raw: dict) -> dict:
        return _run(stages.spark_jobs)

    @task
    def dbt_feature_marts(spark: dict) -> dict:
        return _run(stages.dbt_features)

    @task
    def validate_features(marts: dict) -> list[str]:
        _run(stages.validate_features)
        return list(get_current_context()["params"]["models"])

    @task(**LONG)
    def train(model_name: str) -> dict:
        return _run(stages.train, model_name)

    @task
    def promote(trained: list[dict]) -> dict:
        # by index: iterating the lazy mapped results asks for one past the end, which Airflow logs as an error
        return _run(stages.promote, [trained[i] for i in range(len(trained))])

    @task(**LONG)
    def batch_inference(decision: dict) -> dict:
        return _run(stages.batch_inference)

    @task
    def validate_recommendations(recs: dict) -> dict:
        return _run(stages.validate_recommendations)

    @task(outlets=[RECOMMENDATIONS])
    def publish(checked: dict) -> dict:
        return _run(stages.publish)

    @task
    def dbt_analyst_marts(published: dict) -> dict:
        return _run(stages.dbt_analyst)

    @task
    def report(marts: dict) -> dict:
        return _run(stages.report)

    models = validate_features(dbt_feature_marts(spark_sessionize_and_pools(validate_raw())))
    decision = promote(train.expand(model_name=models))
    published = publish(validate_recommendations(batch_inference(decision)))
    report(dbt_analyst_marts(published))


encore_nightly()
