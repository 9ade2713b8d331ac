"""Data contracts shared by every stage: raw events, lake tables, published table.

The column lists here are the single source of truth. Spark jobs build their
schemas from them (``spark_schema``), validation suites check them, the
generator and adapters emit them (``arrow_schema``), dbt's ``sources.yml``
documents the same names, and ``label_sql`` is the one implementation of the
negative-feedback rules (plain SQL that runs unchanged in Spark SQL and DuckDB).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pyarrow as pa

from encore.core.config import LabelConfig


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # string | timestamp | int64 | int32 | double | bool | date | list<...>
    nullable: bool
    description: str


RAW_EVENT = (
    Column("user_id", "string", False, "User (or session, for session-based data) identifier."),
    Column("item_id", "string", False, "Track / title identifier."),
    Column("ts", "timestamp", False, "Event time, UTC."),
    Column("session_id", "string", True, "Source-provided session id (MSSD); null = gap-based sessions."),
    Column("duration_ms", "int64", True, "How long the item was played."),
    Column("item_length_ms", "int64", True, "Length of the item."),
    Column("completion", "double", True, "Share of the item consumed, in [0,1]."),
    Column("skip_level", "int32", True, "MSSD skip strength: 1 very brief, 2 brief, 3 mostly played, 0 not skipped."),
    Column("rating", "double", True, "Explicit rating (MovieLens-style data)."),
    Column("source", "string", False, "Name of the adapter / feed the row came from."),
)
RAW_EVENT_COLUMNS = tuple(c.name for c in RAW_EVENT)
REQUIRED_RAW_COLUMNS = ("user_id", "item_id", "ts")

# What adapters and the generator write to the landing zone: the raw contract plus
# the parse error (if any) so a malformed value reaches validation and is quarantined
# with its reason instead of failing the whole file or vanishing. Every column is
# nullable here (a ts that failed to parse lands as null); validation enforces RAW_EVENT.
LANDING_EVENT = tuple(replace(c, nullable=True) for c in RAW_EVENT) + (
    Column("parse_error", "string", True, "Why a value could not be parsed, e.g. \"ts: unparseable 'abc'\"; null if clean."),
)

# Optional item attributes (landing/<source>/catalog.parquet -> lake item_catalog).
ITEM_CATALOG = (
    Column("item_id", "string", False, "Item identifier."),
    Column("title", "string", True, "Display title."),
    Column("genre", "string", True, "Genre / category."),
    Column("item_length_ms", "int64", True, "Length of the item."),
)

# Clean events add provenance so every row can be traced back to its file and row.
CLEAN_EVENT = RAW_EVENT + (
    Column("event_id", "string", False, "Deterministic hash of (user_id, item_id, ts, source)."),
    Column("source_file", "string", False, "Landing file the row was read from."),
    Column("source_row", "int64", False, "0-based row number inside source_file."),
)
QUARANTINE = CLEAN_EVENT + (
    Column("reason", "string", False, "Why the row was rejected (first failing rule)."),
)

# Spark output: one row per clean event with session and labels (partition dt = event date).
SESSIONIZED_EVENT = (
    Column("user_id", "string", False, "User identifier."),
    Column("item_id", "string", False, "Item identifier."),
    Column("ts", "timestamp", False, "Event time, UTC."),
    Column("event_id", "string", False, "Event id from the clean events."),
    Column("session_id", "string", False, "Source session id, or user_id + '#' + epoch seconds of the session start."),
    Column("position", "int32", False, "0-based position inside the session."),
    Column("completion", "double", True, "Share consumed, in [0,1]."),
    Column("skip_level", "int32", True, "MSSD skip strength."),
    Column("rating", "double", True, "Explicit rating."),
    Column("is_skip", "bool", False, "Negative feedback (skip, or rating at most the negative threshold)."),
    Column("is_abandoned", "bool", False, "completion at most the abandonment threshold (PHNS hard negative)."),
    Column("engagement", "double", False, "Engagement weight in [0,1] used by engagement-aware losses."),
    Column("next_positive_item_id", "string", True, "Target: the next non-skipped item of the session (null if none)."),
    Column("source", "string", False, "Adapter / feed name."),
)

# Spark output: one row per user as of run date (snapshot partition dt = run date).
SEQUENCE = (
    Column("user_id", "string", False, "User identifier."),
    Column("item_ids", "list<string>", False, "Chronological items, truncated to the most recent max length."),
    Column("is_skip", "list<bool>", False, "Skip flag aligned with item_ids."),
    Column("completion", "list<double>", False, "Engagement aligned with item_ids."),
    Column("ts", "list<timestamp>", False, "Event times aligned with item_ids."),
    Column("valid_idx", "int32", False, "Index in item_ids of the validation target (second-last positive)."),
    Column("test_idx", "int32", False, "Index in item_ids of the test target (last positive)."),
    Column("earlier_item_ids", "list<string>", False, "Distinct items of the user's events older than item_ids (sorted)."),
    Column("n_events", "int64", False, "Events of the user before truncation."),
)

# Spark output: PHNS pools as of run date; pool in {hard, trending, tailing}.
PHNS_POOL = (
    Column("user_id", "string", False, "User identifier."),
    Column("pool", "string", False, "hard | trending | tailing."),
    Column("item_id", "string", False, "Negative candidate."),
    Column("pool_rank", "int32", False, "Rank inside the pool (1 = hardest / most popular / least popular)."),
)
PHNS_NEGATIVE = (
    Column("user_id", "string", False, "User identifier."),
    Column("mix", "string", False, "Named mix (HARD / MEDIUM / EASY) or UNIFORM."),
    Column("draw", "int32", False, "0-based independent sample of the night (training epoch e uses draw (e-1) mod draws)."),
    Column("item_id", "string", False, "Sampled negative item."),
    Column("pool", "string", False, "Pool the negative came from (hard | trending | tailing: PHNS pools; uniform)."),
    Column("sample_idx", "int32", False, "0-based index of the sample for that user and mix."),
    Column("oversampling", "double", False, "Probability the draw holds this negative over that of a uniform "
                                             "draw of n_negatives unseen items (1 = as uniform)."),
)

RECOMMENDATION = (
    Column("run_date", "date", False, "Logical date of the nightly run."),
    Column("user_id", "string", False, "User identifier."),
    Column("rank", "int32", False, "1..K."),
    Column("item_id", "string", False, "Recommended item."),
    Column("score", "double", False, "Model score (higher = better)."),
    Column("soft_label", "double", False, "Predicted soft relevance in [0,1] on the next-K soft-target scale."),
    Column("p_skip", "double", True, "Predicted probability the user skips it (music)."),
    Column("predicted_completion", "double", True, "Predicted completion rate (video)."),
    Column("model_name", "string", False, "Registered model name."),
    Column("model_version", "string", False, "Registered model version."),
    Column("created_at", "timestamp", False, "When the row was written."),
)
RECOMMENDATION_KEY = ("run_date", "user_id", "rank")

# Evaluation results of tracked runs, long format (lake model_runs/dt=run date): the
# warehouse-side copy of MLflow metrics that the leaderboard mart reads.
MODEL_RUN = (
    Column("run_date", "date", False, "Logical date of the nightly run (or experiment date)."),
    Column("mlflow_run_id", "string", False, "MLflow run id."),
    Column("model_name", "string", False, "Model family + variant, e.g. sasrec+cl_item."),
    Column("model_version", "string", True, "Registered model version, if registered."),
    Column("dataset", "string", False, "Dataset name, e.g. synthetic_music, ml-100k."),
    Column("split", "string", False, "valid | test | phns_hard | easy."),
    Column("seed", "int32", False, "Training seed."),
    Column("metric", "string", False, "Metric name, e.g. ndcg@10, hr@1, skip_mrr."),
    Column("value", "double", False, "Metric value."),
)

_ARROW = {
    "string": pa.string(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "int64": pa.int64(),
    "int32": pa.int32(),
    "double": pa.float64(),
    "bool": pa.bool_(),
    "date": pa.date32(),
}
_SPARK = {
    "string": "string",
    "timestamp": "timestamp",
    "int64": "bigint",
    "int32": "int",
    "double": "double",
    "bool": "boolean",
    "date": "date",
}


def _arrow_type(type_name: str) -> pa.DataType:
    if type_name.startswith("list<"):
        return pa.list_(_arrow_type(type_name[5:-1]))
    return _ARROW[type_name]


def arrow_schema(columns: tuple[Column, ...]) -> pa.Schema:
    return pa.schema([pa.field(c.name, _arrow_type(c.type), nullable=c.nullable) for c in columns])


def nullable(schema: pa.Schema) -> pa.Schema:
    """The same schema with every field nullable (landing data before validation)."""
    return pa.schema([pa.field(f.name, f.type, nullable=True) for f in schema])


def spark_ddl(columns: tuple[Column, ...]) -> str:
    """DDL string accepted by ``spark.createDataFrame(..., schema=...)`` and ``spark.read.schema``."""

    def spark_type(type_name: str) -> str:
        if type_name.startswith("list<"):
            return f"array<{spark_type(type_name[5:-1])}>"
        return _SPARK[type_name]

    return ", ".join(f"`{c.name}` {spark_type(c.type)}" for c in columns)


def label_sql(labels: LabelConfig) -> dict[str, str]:
    """SQL expressions (Spark SQL and DuckDB alike) for the derived labels of one event row.

    Input columns: completion, skip_level, rating. ``completion`` must already be
    filled from duration_ms / item_length_ms where the source lacks it.
    """
    levels = ", ".join(str(int(level)) for level in labels.skip_levels)
    is_skip = (
        "CASE "
        f"WHEN skip_level IS NOT NULL THEN skip_level IN ({levels}) "
        f"WHEN completion IS NOT NULL THEN completion < {labels.skip_completion_below} "
        f"WHEN rating IS NOT NULL THEN rating <= {labels.negative_rating_at_most} "
        "ELSE FALSE END"
    )
    is_abandoned = f"COALESCE(completion <= {labels.abandon_completion_at_most}, FALSE)"
    engagement = (
        "CASE "
        "WHEN completion IS NOT NULL THEN completion "
        "WHEN rating IS NOT NULL THEN LEAST(GREATEST(rating / 5.0, 0.0), 1.0) "
        f"WHEN ({is_skip}) THEN 0.0 ELSE 1.0 END"
    )
    return {"is_skip": is_skip, "is_abandoned": is_abandoned, "engagement": engagement}


def completion_sql() -> str:
    """completion, filled from duration / item length where the source gives only those."""
    return (
        "COALESCE(completion, CASE WHEN item_length_ms > 0 AND duration_ms IS NOT NULL "
        "THEN LEAST(CAST(duration_ms AS DOUBLE) / item_length_ms, 1.0) END)"
    )
