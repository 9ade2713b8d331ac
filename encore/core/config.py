"""One typed configuration for every stage of Encore.

Resolution order (later wins):
1. the defaults in the dataclasses below;
2. a TOML file named by ``ENCORE_CONFIG`` (sections match the dataclass names:
   ``[paths]``, ``[data]``, ``[labels]``, ...);
3. environment variables ``ENCORE__<SECTION>__<FIELD>`` (e.g.
   ``ENCORE__TRAINING__EPOCHS=3``), plus the shortcut ``ENCORE_HOME`` for the
   state directory.

Values from TOML/env are converted to the field's declared type, so a typo or a
bad value fails here with the variable's name instead of deep inside a task.
Every path is derived from ``paths.home`` unless set explicitly, so nothing in
a task hard-codes a location.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path

from encore.core.errors import ConfigError


@dataclass
class PathsConfig:
    home: str = ".encore"
    landing: str = ""  # raw files as delivered, landing/<source>/dt=YYYY-MM-DD/
    lake: str = ""  # Parquet lake (local dir or s3a:// URI), one dt= partition per run date
    warehouse: str = ""  # DuckDB file analysts and dbt use
    mlflow_tracking_uri: str = ""
    mlflow_artifacts: str = ""
    airflow_home: str = ""
    reports: str = ""
    checkpoints: str = ""

    def resolve(self) -> None:
        home = Path(self.home).expanduser().resolve()
        self.home = str(home)
        defaults = {
            "landing": home / "landing",
            "lake": home / "lake",
            "warehouse": home / "warehouse" / "encore.duckdb",
            "mlflow_artifacts": home / "mlflow" / "artifacts",
            "airflow_home": home / "airflow",
            "reports": home / "reports",
            "checkpoints": home / "checkpoints",
        }
        for name, value in defaults.items():
            if not getattr(self, name):
                setattr(self, name, str(value))
        if not self.mlflow_tracking_uri:
            self.mlflow_tracking_uri = f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"


@dataclass
class DataConfig:
    """The embedded synthetic dataset (see encore.ingest.generator)."""

    domain: str = "music"  # music | video
    source: str = "synthetic_music"
    n_users: int = 1500
    n_items: int = 2000
    start_date: str = "2026-10-01"
    n_days: int = 30
    sessions_per_user_day: float = 0.3
    seed: int = 7


@dataclass
class LabelConfig:
    """The one place the negative-feedback rules live (design: Derived labels)."""

    skip_levels: tuple[int, ...] = (1, 2)  # MSSD skip_1/skip_2 are skips; 3 = mostly played
    skip_completion_below: float = 0.25  # when skip_level is absent
    abandon_completion_at_most: float = 0.05  # video: abandoned = user-specific hard negative
    negative_rating_at_most: float = 2.0  # MovieLens-style ratings
    min_ts: str = "2000-01-01"
    max_future_days: int = 1  # events later than run date + this are quarantined


@dataclass
class SessionConfig:
    gap_minutes: int = 30
    max_seq_len: int = 50
    lookback_days: int = 90


@dataclass
class PhnsConfig:
    trending_window_days: int = 7
    pool_size: int = 100  # items kept per global pool
    tailing_min_support: int = 2
    n_negatives: int = 50  # per user and mix
    mixes: dict[str, float] = field(
        default_factory=lambda: {"HARD": 0.5, "MEDIUM": 0.3, "EASY": 0.2}
    )
    default_mix: str = "MEDIUM"
    uniform_share: float = 0.0  # share of each user's training negatives drawn uniformly from unseen items
    seed: int = 13


@dataclass
class TrainingConfig:
    models: tuple[str, ...] = ("sasrec", "smoe_bst")
    epochs: int = 3
    # windows per step: a window holds up to max_seq_len targets, so 64 windows ~ 3K targets;
    # on the default data 64 gave 3x the test NDCG@10 of 256 for the same 3 epochs and wall time
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    hidden: int = 128
    layers: int = 2
    heads: int = 8
    dropout: float = 0.2
    prediction_layer: bool = True  # SASRec / BERT4Rec: FC + GELU before the dot product (seed 000)
    max_seq_len: int = 50
    all_train_windows: bool = True  # a history longer than max_seq_len trains on all its windows
    window_stride: int = 0  # events between those windows' ends; 0 = max_seq_len - 1 (windows do not overlap)
    train_target: str = "next_positive"  # next_positive (seeds' task) | next_item (skipped events are targets too)
    user_features: bool = True  # S-MoE-BST reads the dbt user_features mart of the run date
    loss: str = "sampled_softmax"  # sampled_softmax | full_softmax
    n_sampled: int = 1000
    contrastive: str = "item"  # none | item | encoder
    cl_weight: float = 0.5
    cl_temperature: float = 0.1
    patience: int = 3
    seed: int = 42
    device: str = "auto"  # auto | cpu | cuda
    bf16: bool = True
    # S-MoE-BST (seed 003): PHNS mix ("" = phns.default_mix; UNIFORM = no PHNS), next-K soft
    # labels, multi-task loss weights, engagement weighting and the gate
    phns_mix: str = ""
    soft_labels: tuple[float, ...] = (1.0, 0.6, 0.3)
    rank_weight: float = 1.0
    ctr_weight: float = 0.5
    completion_weight: float = 0.5
    entropy_weight: float = 0.01
    engagement_alpha: float = 1.0
    ctr_positions: int = 8  # positions per window the CTR head trains on (0 = all)
    gate_noise: float = 1.0
    gate_temperature: float = 1.0


@dataclass
class InferenceConfig:
    k: int = 20
    exclude_history: bool = True
    exclude_skipped_days: int = 30
    chunk_users: int = 4096


@dataclass
class PromotionConfig:
    metric: str = "ndcg@10"
    margin: float = 0.0
    guard_metric: str = "skip_mrr"  # lower is better; must not get worse
    registered_model: str = "encore_recommender"


@dataclass
class SparkConfig:
    master: str = "local[*]"
    driver_memory: str = "2g"
    shuffle_partitions: int = 8
    # local (in-process) | submit (spark-submit to spark.master) | connect (the task is a Spark
    # Connect client of a standing server at spark.remote: its JVM stays warm between nights)
    mode: str = "local"
    remote: str = ""  # Spark Connect URL for mode = connect, e.g. sc://spark-connect:15002
    # JVM JIT of an in-process session: quick (C1 only: less compile work, wins on short runs),
    # hot (C1, and C2 only for the hottest code: wins on large inputs), full (the JVM's default
    # C2 thresholds), auto (quick up to quick_jit_max_mb of clean events read, hot above)
    jit: str = "auto"
    quick_jit_max_mb: int = 64
    # extra JVM options, e.g. GC flags or a Flight Recorder recording (benchmarks.spark_bench --profile):
    # the in-process driver's, and under spark-submit the driver's and the executors'
    # (with the JIT options, as spark.*.extraJavaOptions)
    java_options: str = ""


@dataclass
class EncoreConfig:
    paths: PathsConfig = field(default_factory=PathsConfig)
    data: DataConfig = field(default_factory=DataConfig)
    labels: LabelConfig = field(default_factory=LabelConfig)
    sessions: SessionConfig = field(default_factory=SessionConfig)
    phns: PhnsConfig = field(default_factory=PhnsConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    promotion: PromotionConfig = field(default_factory=PromotionConfig)
    spark: SparkConfig = field(default_factory=SparkConfig)

    @property
    def home(self) -> Path:
        return Path(self.paths.home)

    def lake_path(self, table: str, run_date: str | dt.date | None = None) -> str:
        """Location of a lake table, or of one of its ``dt=`` partitions."""
        base = f"{self.paths.lake.rstrip('/')}/{table}"
        return base if run_date is None else f"{base}/dt={_iso(run_date)}"

    def landing_path(self, run_date: str | dt.date, source: str | None = None) -> str:
        return f"{self.paths.landing}/{source or self.data.source}/dt={_iso(run_date)}"

    def env(self) -> dict[str, str]:
        """Environment for subprocesses (dbt, spark-submit): the paths dbt reads, and every
        setting as ``ENCORE__<SECTION>__<FIELD>``, so that ``load_config()`` there rebuilds this
        config, keyword overrides (e.g. the DAG's params) included."""
        env = {
            "ENCORE_HOME": self.paths.home,
            "ENCORE_LAKE": self.paths.lake,
            "ENCORE_WAREHOUSE": self.paths.warehouse,
            "MLFLOW_TRACKING_URI": self.paths.mlflow_tracking_uri,
        }
        for section in dataclasses.fields(self):
            values = getattr(self, section.name)
            for setting in dataclasses.fields(values):
                env[f"ENCORE__{section.name.upper()}__{setting.name.upper()}"] = _env_value(
                    getattr(values, setting.name))
        return env


def _env_value(value: typing.Any) -> str:
    """A setting as ``_convert`` reads it back from the environment."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value)
    if isinstance(value, dict):
        return ",".join(f"{key}={item}" for key, item in value.items())
    return str(value)


def _iso(value: str | dt.date) -> str:
    return value.isoformat() if isinstance(value, dt.date) else dt.date.fromisoformat(value).isoformat()


def _convert(raw: typing.Any, hint: typing.Any, where: str) -> typing.Any:
    origin = typing.get_origin(hint)
    try:
        if hint is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off"}:
                return False
            raise ValueError(f"not a boolean: {raw!r}")
        if hint in (int, float, str):
            return hint(raw)
        if origin is tuple:
            (item_type, _) = typing.get_args(hint)
            items = raw if isinstance(raw, (list, tuple)) else [p for p in str(raw).split(",") if p.strip()]
            return tuple(_convert(i.strip() if isinstance(i, str) else i, item_type, where) for i in items)
        if origin is dict:
            if isinstance(raw, dict):
                return {str(k): float(v) for k, v in raw.items()}
            pairs = (p.split("=") for p in str(raw).split(",") if p.strip())
            return {k.strip(): float(v) for k, v in pairs}
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: cannot read {raw!r} as {hint}: {exc}") from exc
    raise ConfigError(f"{where}: unsupported type {hint}")


def _apply(section: typing.Any, values: dict[str, typing.Any], where: str) -> None:
    hints = typing.get_type_hints(type(section))
    names = {f.name for f in dataclasses.fields(section)}
    for key, raw in values.items():
        if key not in names:
            raise ConfigError(f"{where}: unknown setting {key!r}; known: {sorted(names)}")
        setattr(section, key, _convert(raw, hints[key], f"{where}.{key}"))


def load_config(environ: typing.Mapping[str, str] | None = None, **overrides: dict) -> EncoreConfig:
    """Build the config from defaults, ``ENCORE_CONFIG`` TOML, env vars and keyword overrides.

    ``overrides`` maps a section name to field values, e.g.
    ``load_config(data={"n_users": 50})`` (used by tests and CLIs).
    """
    env = os.environ if environ is None else environ
    cfg = EncoreConfig()
    sections = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}

    toml_path = env.get("ENCORE_CONFIG")
    if toml_path:
        try:
            with open(toml_path, "rb") as fh:
                from_file = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"ENCORE_CONFIG={toml_path}: {exc}") from exc
        for name, values in from_file.items():
            if name not in sections:
                raise ConfigError(f"{toml_path}: unknown section [{name}]; known: {sorted(sections)}")
            _apply(sections[name], values, f"{toml_path}[{name}]")

    if env.get("ENCORE_HOME"):
        cfg.paths.home = env["ENCORE_HOME"]
    for key, raw in env.items():
        if not key.startswith("ENCORE__"):
            continue
        parts = key[len("ENCORE__"):].lower().split("__")
        if len(parts) != 2 or parts[0] not in sections:
            raise ConfigError(f"{key}: expected ENCORE__<SECTION>__<FIELD> with SECTION in {sorted(sections)}")
        _apply(sections[parts[0]], {parts[1]: raw}, key)

    for name, values in overrides.items():
        if name not in sections:
            raise ConfigError(f"override: unknown section {name!r}")
        _apply(sections[name], values, f"override.{name}")

    cfg.paths.resolve()
    _validate(cfg)
    return cfg


def _validate(cfg: EncoreConfig) -> None:
    checks = [
        (cfg.data.domain in {"music", "video"}, "data.domain must be 'music' or 'video'"),
        (cfg.data.n_users > 0 and cfg.data.n_items > 1, "data.n_users and data.n_items must be positive"),
        (cfg.data.n_days > 0, "data.n_days must be positive"),
        (cfg.sessions.gap_minutes > 0, "sessions.gap_minutes must be positive"),
        (0 <= cfg.labels.abandon_completion_at_most < 1, "labels.abandon_completion_at_most must be in [0,1)"),
        (cfg.phns.default_mix in {*cfg.phns.mixes, "UNIFORM"},
         f"phns.default_mix must be UNIFORM or one of {sorted(cfg.phns.mixes)}"),
        (all(0 <= v <= 1 for v in cfg.phns.mixes.values()), "phns.mixes shares must be in [0,1]"),
        (cfg.training.contrastive in {"none", "item", "encoder"}, "training.contrastive must be none|item|encoder"),
        (cfg.training.loss in {"sampled_softmax", "full_softmax"}, "training.loss must be sampled_softmax|full_softmax"),
        (cfg.training.device in {"auto", "cpu", "cuda"}, "training.device must be auto|cpu|cuda"),
        (cfg.training.hidden % cfg.training.heads == 0, "training.hidden must be divisible by training.heads"),
        (cfg.inference.k > 0, "inference.k must be positive"),
        (cfg.spark.mode in {"local", "submit", "connect"}, "spark.mode must be local|submit|connect"),
        (cfg.spark.mode != "connect" or cfg.spark.remote.startswith("sc://"),
         f"spark.remote must be a Spark Connect URL sc://host:port when spark.mode = connect, not {cfg.spark.remote!r}"),
        (cfg.spark.jit in {"auto", "quick", "hot", "full"}, "spark.jit must be auto|quick|hot|full"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    try:
        dt.date.fromisoformat(cfg.data.start_date)
    except ValueError as exc:
        raise ConfigError(f"data.start_date: {exc}") from exc


def default_run_dates(cfg: EncoreConfig, n: int = 3) -> list[str]:
    """The last ``n`` days of the embedded dataset: what ``make run`` processes nightly."""
    end = dt.date.fromisoformat(cfg.data.start_date) + dt.timedelta(days=cfg.data.n_days - 1)
    return [(end - dt.timedelta(days=i)).isoformat() for i in reversed(range(n))]
