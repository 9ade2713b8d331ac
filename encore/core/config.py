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
import re
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
    tmp: str = ""  # scratch space of the night's processes (Spark local dirs, temp files); emptied per night

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
            "tmp": home / "tmp",
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
class ScheduleConfig:
    """When the DAG ``encore_nightly`` runs. ``start_date`` "" = the earliest landed day of
    the night's sources (so a dataset from 1998 runs its nights on 1998 dates), else
    YYYY-MM-DD; ``catchup``: the scheduler creates the runs from the start date on."""

    start_date: str = ""
    catchup: bool = True


@dataclass
class IngestConfig:
    # landed sources a night reads (landing/<source>/); empty = every source in the landing zone
    sources: tuple[str, ...] = ()


@dataclass
class LabelConfig:
    """The one place the negative-feedback rules live (design: Derived labels)."""

    skip_levels: tuple[int, ...] = (1, 2)  # MSSD skip_1/skip_2 are skips; 3 = mostly played
    skip_completion_below: float = 0.25  # when skip_level is absent
    abandon_completion_at_most: float = 0.05  # video: abandoned = user-specific hard negative
    negative_rating_at_most: float = 2.0  # MovieLens-style ratings
    # events before this are quarantined (epoch-0 and other garbage timestamps); early enough
    # for the public logs (MovieLens-100k starts 1997-09, MovieLens-25M 1995-01)
    min_ts: str = "1990-01-01"
    max_future_days: int = 1  # events later than run date + this are quarantined


@dataclass
class SessionConfig:
    gap_minutes: int = 30
    lookback_days: int = 90  # days of events a night's sessions, sequences and pools are built from
    # events of each user kept in the night's sequence snapshot (at least one model window,
    # training.max_seq_len + 1); longer histories train on all their windows
    # (training.all_train_windows): 200 rather than one window gave SASRec +7 % test NDCG@10 on
    # the default data and +24 % on MovieLens-100k (README "Which models compete")
    sequence_events: int = 200


@dataclass
class FeaturesConfig:
    """Settings of the dbt feature marts (the runner passes them to dbt as vars)."""

    window_days: tuple[int, ...] = (1, 7, 30)  # short / mid / long feature windows, ending at run_date
    eval_negatives_per_pool: int = 20  # PHNS-hard evaluation set: top-N of each hard / trending / tailing pool
    eval_easy_mix: str = "UNIFORM"  # easy evaluation set: draw 0 of this phns_negatives mix


@dataclass
class PhnsConfig:
    trending_window_days: int = 7
    pool_size: int = 100  # items kept per global pool
    tailing_min_support: int = 2
    n_negatives: int = 50  # per user, mix and draw
    draws: int = 3  # independent samples per night; training epoch e uses draw (e - 1) mod draws
    # share of PHNS negatives per named mix (seed 003), taken in turns from the user's hard, trending and
    # tailing pools; the rest are uniform over unseen items (spark_jobs.phns_pools)
    mixes: dict[str, float] = field(
        default_factory=lambda: {"HARD": 0.5, "MEDIUM": 0.3, "EASY": 0.2}
    )
    default_mix: str = "MEDIUM"  # the mix S-MoE-BST trains on (the DAG param phns_mix overrides it)
    seed: int = 13


@dataclass
class TrainingConfig:
    # every night's challengers: the neural model and the cheap baselines, on the same validation
    # split, so the champion is the night's best model (README "Results: which models compete")
    models: tuple[str, ...] = ("sasrec", "session_knn", "wrmf_neg", "item_knn", "most_pop")
    # SASRec's defaults come from the lever table in README "Which models compete": full softmax,
    # no prediction layer, the skip flag embedded, up to 20 epochs with early stopping
    epochs: int = 20
    # windows per step: a window holds up to max_seq_len targets, so 64 windows ~ 3K targets
    batch_size: int = 64
    lr: float = 1e-3
    lr_schedule: str = "constant"  # constant | cosine (linear warm-up over warmup_share of the steps, cosine decay)
    warmup_share: float = 0.05
    weight_decay: float = 0.01
    hidden: int = 128
    layers: int = 2
    heads: int = 8
    # on the embeddings' sum and each block's attention and feed-forward outputs (BERT4Rec and
    # S-MoE-BST: also on the attention probabilities)
    dropout: float = 0.2
    # SASRec: on the attention probabilities. 0 since 2026-12-04: on CPU, without drawing its masks
    # each epoch is 14-24 % shorter, for NDCG@10 within the seeds' spread (README "Attention dropout off")
    attention_dropout: float = 0.0
    prediction_layer: bool = False  # SASRec / BERT4Rec: FC + GELU before the dot product (seed 000's)
    feedback_embedding: bool = True  # SASRec: embed each input event's skip flag beside its item
    tied_embeddings: bool = True  # SASRec: score against the input item embeddings; False = an output table (gSASRec)
    time_embedding: bool = False  # SASRec: embed each input event's time gap and age (log2-second buckets)
    time_attention: bool = False  # SASRec: TiSASRec's per-head attention bias by the time span between two events
    max_seq_len: int = 50
    all_train_windows: bool = True  # a history longer than max_seq_len trains on all its windows
    window_stride: int = 0  # events between those windows' ends; 0 = max_seq_len - 1 (windows do not overlap)
    # next_positive (seeds' task) | next_item (skipped events are targets too) | next_k (full_softmax
    # against the next K positives of fct_training_examples, weighted by their soft_labels)
    train_target: str = "next_positive"
    user_features: bool = True  # S-MoE-BST reads the dbt user_features mart of the run date
    # full_softmax: cross-entropy over the whole catalogue (SASRec+); sampled_softmax (n_sampled
    # shared negatives) for catalogues too large to score every item at every position; gbce
    # (gSASRec): binary cross-entropy over gbce_negatives uniform negatives per position, calibrated by t
    loss: str = "full_softmax"  # full_softmax | sampled_softmax | gbce
    n_sampled: int = 1000
    label_smoothing: float = 0.0  # full_softmax
    # full_softmax: leave the items a position has already read (its window) out of its softmax,
    # the candidates a whole-history evaluation ranks; for data without repeats (ratings, purchases)
    exclude_seen: bool = False
    gbce_negatives: int = 256
    gbce_calibration: float = 0.75
    # validate, keep and publish an exponential moving average of the weights over about the last
    # ema_epochs epochs, whatever the data and batch size (decay per step 1 - 1 / (ema_epochs x
    # steps per epoch), and until then a step-weighted average of every step so far); 0 = no
    # average. ema_decay > 0 gives a fixed decay per step instead and takes precedence
    ema_epochs: float = 6.0
    ema_decay: float = 0.0
    contrastive: str = "item"  # none | item | encoder (skip-informed) | dropout (DuoRec's, needs no skips)
    cl_weight: float = 0.5
    cl_temperature: float = 0.1
    patience: int = 3
    seed: int = 42
    # > 1: each neural model is that many models (seeds seed, seed + 1, ...) scored as one (the mean of
    # their log-softmax scores; training.models.ensemble), at that many times the training time
    ensemble_seeds: int = 1
    device: str = "auto"  # auto | cpu | cuda
    bf16: bool = True
    # evaluation protocol: the user's items removed from the ranking of a validation / test target:
    # history (every earlier item, as RecBole and most papers) | window (the input window only) | none
    eval_exclude: str = "history"
    # S-MoE-BST (seed 003): next-K soft labels (also the dbt var of fct_training_examples),
    # multi-task loss weights, engagement weighting and the gate; its PHNS mix is phns.default_mix
    soft_labels: tuple[float, ...] = (1.0, 0.6, 0.3)
    rank_weight: float = 1.0
    ctr_weight: float = 0.5
    completion_weight: float = 0.5
    entropy_weight: float = 0.01
    engagement_alpha: float = 1.0
    ctr_positions: int = 8  # positions per window the CTR head trains on (0 = all)
    # sampling-bias (logQ) correction of its PHNS negatives: beta * log(oversampling) off each one's
    # logit (phns_negatives.oversampling); 0 = off, 1 = full. Off: it costs the hard-set gain (README, PHNS)
    phns_sampling_correction: float = 0.0
    gate_noise: float = 1.0
    gate_temperature: float = 1.0
    # > 1: the nightly trains the sequence models with torchrun DDP on this many processes
    # (training.launch); batch_size stays the total per step over all of them
    world_size: int = 1


@dataclass
class InferenceConfig:
    k: int = 20
    exclude_history: bool = True
    exclude_skipped_days: int = 30
    chunk_users: int = 4096
    outcome_events: int = 10  # each user's most recent events the p_skip / completion models learn from


@dataclass
class PromotionConfig:
    metric: str = "ndcg@10"
    margin: float = 0.0
    guard_metric: str = "skip_mrr"  # lower is better; must not get worse
    registered_model: str = "encore_recommender"
    # sanity floor every challenger must clear, the first night's included: its metric at least
    # this share of the most-popular baseline's on the same validation data, finite scores that
    # are not (nearly) constant per user
    popularity_floor: float = 0.5
    min_score_std: float = 1e-6


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
    # mode = submit / connect on a cluster: the memory of each executor (one per standalone worker)
    executor_memory: str = "1g"
    # the standalone cluster on 127.0.0.1 of `python -m spark_jobs.cluster up` (spark://127.0.0.1:<master_port>);
    # worker i's web UI listens on webui_port + i
    cluster_workers: int = 2
    worker_cores: int = 1
    worker_memory: str = "2g"
    master_port: int = 7077
    webui_port: int = 8090


@dataclass
class DeployConfig:
    """Deployed mode on one machine (``encore.deploy``) and the warehouse backend the stages use.

    Every service listens on ``host`` only; its state lives under ``<paths.home>/deploy``. The
    Postgres password never comes from here: env ``ENCORE_PG_PASSWORD``, else the libpq
    password file ``deploy up`` writes (``PGPASSFILE``)."""

    warehouse: str = "duckdb"  # duckdb (the embedded file) | postgres (the deployed server below)
    host: str = "127.0.0.1"
    pg_port: int = 55432
    pg_user: str = "encore"  # the role the pipeline and the services connect as
    pg_analyst_user: str = "encore_analyst"  # read-only role for analysts
    pg_database: str = "encore"  # the warehouse
    pg_airflow_database: str = "airflow"
    pg_mlflow_database: str = "mlflow"
    pg_lake_schema: str = "lake"  # lake tables loaded for dbt-postgres
    pg_os_user: str = "postgres"  # the server runs as this OS user when started by root
    airflow_port: int = 18080
    mlflow_port: int = 15000


@dataclass
class EncoreConfig:
    paths: PathsConfig = field(default_factory=PathsConfig)
    data: DataConfig = field(default_factory=DataConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    labels: LabelConfig = field(default_factory=LabelConfig)
    sessions: SessionConfig = field(default_factory=SessionConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    phns: PhnsConfig = field(default_factory=PhnsConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    promotion: PromotionConfig = field(default_factory=PromotionConfig)
    spark: SparkConfig = field(default_factory=SparkConfig)
    deploy: DeployConfig = field(default_factory=DeployConfig)

    @property
    def home(self) -> Path:
        return Path(self.paths.home)

    def lake_path(self, table: str, run_date: str | dt.date | None = None) -> str:
        """Location of a lake table, or of one of its ``dt=`` partitions."""
        base = f"{self.paths.lake.rstrip('/')}/{table}"
        return base if run_date is None else f"{base}/dt={_iso(run_date)}"

    def landing_path(self, run_date: str | dt.date, source: str | None = None) -> str:
        return f"{self.paths.landing}/{check_source_name(source or self.data.source)}/dt={_iso(run_date)}"

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


SOURCE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def check_source_name(name: str) -> str:
    """A source name becomes a folder of the landing zone: letters, digits, ``_ . -`` only,
    so it can never point outside it (``../x``) or into SQL."""
    if not SOURCE_NAME.fullmatch(name or "") or ".." in name:
        raise ConfigError(f"source name {name!r} is not allowed: use 1-64 letters, digits, '_', '.' or '-' "
                          "(starting with a letter or digit, no '..')")
    return name


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
        (cfg.training.phns_sampling_correction >= 0, "training.phns_sampling_correction must be >= 0"),
        (cfg.training.contrastive in {"none", "item", "encoder", "dropout"},
         "training.contrastive must be none|item|encoder|dropout"),
        (cfg.training.loss in {"sampled_softmax", "full_softmax", "gbce"},
         "training.loss must be sampled_softmax|full_softmax|gbce"),
        (0 <= cfg.training.label_smoothing < 1, "training.label_smoothing must be in [0, 1)"),
        (0 <= cfg.training.dropout < 1 and 0 <= cfg.training.attention_dropout < 1,
         "training.dropout and training.attention_dropout must be in [0, 1)"),
        (not cfg.training.exclude_seen or (cfg.training.loss == "full_softmax" and cfg.training.label_smoothing == 0),
         "training.exclude_seen needs training.loss full_softmax and training.label_smoothing 0"),
        (cfg.training.train_target in {"next_positive", "next_item", "next_k"},
         "training.train_target must be next_positive|next_item|next_k"),
        (cfg.training.train_target != "next_k" or cfg.training.loss == "full_softmax",
         "training.train_target next_k needs training.loss full_softmax"),
        (cfg.training.gbce_negatives >= 1, "training.gbce_negatives must be >= 1"),
        (0 <= cfg.training.gbce_calibration <= 1, "training.gbce_calibration must be in [0, 1]"),
        (0 <= cfg.training.ema_decay < 1, "training.ema_decay must be in [0, 1)"),
        (cfg.training.ema_epochs >= 0, "training.ema_epochs must be >= 0"),
        (cfg.training.ensemble_seeds >= 1, "training.ensemble_seeds must be >= 1"),
        (cfg.training.ensemble_seeds == 1 or "smoe_bst" not in cfg.training.models,
         "training.ensemble_seeds > 1 does not apply to smoe_bst (its PHNS evaluation reads one model): "
         "drop smoe_bst from training.models or set ensemble_seeds 1"),
        (cfg.training.device in {"auto", "cpu", "cuda"}, "training.device must be auto|cpu|cuda"),
        (cfg.training.hidden % cfg.training.heads == 0, "training.hidden must be divisible by training.heads"),
        (cfg.inference.k > 0, "inference.k must be positive"),
        (cfg.spark.mode in {"local", "submit", "connect"}, "spark.mode must be local|submit|connect"),
        (cfg.spark.mode != "connect" or cfg.spark.remote.startswith("sc://"),
         f"spark.remote must be a Spark Connect URL sc://host:port when spark.mode = connect, not {cfg.spark.remote!r}"),
        (cfg.spark.jit in {"auto", "quick", "hot", "full"}, "spark.jit must be auto|quick|hot|full"),
        (cfg.deploy.warehouse in {"duckdb", "postgres"}, "deploy.warehouse must be duckdb|postgres"),
        (cfg.spark.cluster_workers >= 1 and cfg.spark.worker_cores >= 1,
         "spark.cluster_workers and spark.worker_cores must be >= 1"),
        (all(m[:-1].isdigit() and m[-1:].lower() in "kmgt" for m in (cfg.spark.executor_memory, cfg.spark.worker_memory)),
         "spark.executor_memory and spark.worker_memory must look like 512m or 2g"),
        (0 < cfg.spark.master_port < 65536 and 0 < cfg.spark.webui_port < 65536 - cfg.spark.cluster_workers,
         "spark.master_port and spark.webui_port (+ cluster_workers) must be TCP ports"),
        (cfg.training.world_size >= 1, "training.world_size must be >= 1"),
        (cfg.training.batch_size % max(cfg.training.world_size, 1) == 0,
         "training.batch_size (windows per step over all processes) must be divisible by training.world_size"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    for name in (cfg.data.source, *cfg.ingest.sources):
        check_source_name(name)
    more = [
        (len(cfg.features.window_days) == 3 and list(cfg.features.window_days) == sorted(set(cfg.features.window_days))
         and cfg.features.window_days[0] >= 1, "features.window_days must be three increasing day counts >= 1"),
        (cfg.features.eval_easy_mix in {*cfg.phns.mixes, "UNIFORM"}, "features.eval_easy_mix must be UNIFORM or a phns mix"),
        (cfg.phns.draws >= 1 and cfg.phns.n_negatives >= 1, "phns.draws and phns.n_negatives must be >= 1"),
        (all(0 < v <= 1 for v in cfg.training.soft_labels) and cfg.training.soft_labels[:1] == (1.0,),
         "training.soft_labels must start with 1.0, each in (0, 1]"),
    ]
    for ok, message in more:
        if not ok:
            raise ConfigError(message)
    for name, value in (("data.start_date", cfg.data.start_date), ("schedule.start_date", cfg.schedule.start_date)):
        try:
            if value or name == "data.start_date":
                dt.date.fromisoformat(value)
        except ValueError as exc:
            raise ConfigError(f"{name}: {exc}") from exc
