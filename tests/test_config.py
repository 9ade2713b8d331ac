import pytest

from encore.core.config import ConfigError, load_config


def test_paths_derive_from_home(tmp_path):
    cfg = load_config({"ENCORE_HOME": str(tmp_path)})
    assert cfg.paths.lake == str(tmp_path / "lake")
    assert cfg.paths.warehouse == str(tmp_path / "warehouse" / "encore.duckdb")
    assert cfg.paths.mlflow_tracking_uri == f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    assert cfg.lake_path("sequences", "2026-10-05") == f"{tmp_path}/lake/sequences/dt=2026-10-05"


def test_env_overrides_are_typed(tmp_path):
    cfg = load_config(
        {
            "ENCORE_HOME": str(tmp_path),
            "ENCORE__TRAINING__EPOCHS": "3",
            "ENCORE__TRAINING__BF16": "false",
            "ENCORE__TRAINING__MODELS": "sasrec,bert4rec",
            "ENCORE__PHNS__MIXES": "HARD=0.5,EASY=0.2",
            "ENCORE__PHNS__DEFAULT_MIX": "EASY",
            "ENCORE__PATHS__LAKE": "s3a://bucket/lake",
        }
    )
    assert cfg.training.epochs == 3 and cfg.training.bf16 is False
    assert cfg.training.models == ("sasrec", "bert4rec")
    assert cfg.phns.mixes == {"HARD": 0.5, "EASY": 0.2}
    assert cfg.lake_path("sequences") == "s3a://bucket/lake/sequences"


def test_env_for_subprocesses_rebuilds_the_same_config(tmp_path):
    """spark-submit and dbt run in subprocesses: keyword overrides (the DAG's params) must reach them."""
    cfg = load_config(
        {"ENCORE_HOME": str(tmp_path)},
        training={"epochs": 3, "bf16": False, "models": ("sasrec",), "lr": 0.0005, "soft_labels": (1.0, 0.5)},
        phns={"mixes": {"HARD": 0.5, "EASY": 0.25}, "default_mix": "EASY"},
        sessions={"gap_minutes": 45},
        spark={"java_options": "-XX:+UseParallelGC -Dx=1", "jit": "hot"},
    )
    env = cfg.env()
    assert env["ENCORE__SESSIONS__GAP_MINUTES"] == "45" and env["ENCORE__TRAINING__BF16"] == "false"
    assert env["ENCORE__PHNS__MIXES"] == "HARD=0.5,EASY=0.25"
    assert load_config(env) == cfg
    assert load_config({}) != cfg  # the test above is not comparing defaults


def test_training_loss_options_load_from_env(tmp_path):
    cfg = load_config({"ENCORE_HOME": str(tmp_path), "ENCORE__TRAINING__LOSS": "gbce",
                       "ENCORE__TRAINING__GBCE_NEGATIVES": "64", "ENCORE__TRAINING__EMA_DECAY": "0.99",
                       "ENCORE__TRAINING__TIED_EMBEDDINGS": "false"})
    assert (cfg.training.loss, cfg.training.gbce_negatives, cfg.training.ema_decay) == ("gbce", 64, 0.99)
    assert cfg.training.tied_embeddings is False


def test_toml_file_then_env(tmp_path):
    toml = tmp_path / "encore.toml"
    toml.write_text('[inference]\nk = 5\n[data]\nn_users = 40\n')
    cfg = load_config({"ENCORE_HOME": str(tmp_path), "ENCORE_CONFIG": str(toml), "ENCORE__INFERENCE__K": "7"})
    assert cfg.inference.k == 7 and cfg.data.n_users == 40


@pytest.mark.parametrize(
    "env, message",
    [
        ({"ENCORE__TRAINING__EPOCHS": "many"}, "ENCORE__TRAINING__EPOCHS"),
        ({"ENCORE__TRAINING__EPOCS": "3"}, "unknown setting 'epocs'"),
        ({"ENCORE__NOPE__X": "1"}, "ENCORE__NOPE__X"),
        ({"ENCORE__TRAINING__CONTRASTIVE": "both"}, "training.contrastive"),
        ({"ENCORE__TRAINING__HEADS": "3"}, "divisible"),
        ({"ENCORE__SPARK__JIT": "fast"}, "spark.jit must be auto|quick|hot|full"),
        ({"ENCORE__TRAINING__LOSS": "bce"}, "training.loss must be sampled_softmax|full_softmax|gbce"),
        ({"ENCORE__TRAINING__EMA_DECAY": "1"}, r"training.ema_decay must be in \[0, 1\)"),
        ({"ENCORE__TRAINING__EMA_EPOCHS": "-1"}, "training.ema_epochs must be >= 0"),
        ({"ENCORE__TRAINING__ATTENTION_DROPOUT": "1"}, r"training.dropout and training.attention_dropout must be in \[0, 1\)"),
        ({"ENCORE__TRAINING__PHNS_SAMPLING_CORRECTION": "-0.5"}, r"training.phns_sampling_correction must be >= 0"),
        ({"ENCORE__TRAINING__EXCLUDE_SEEN": "true", "ENCORE__TRAINING__LOSS": "gbce"},
         "training.exclude_seen needs training.loss full_softmax"),
        ({"ENCORE__TRAINING__TRAIN_TARGET": "next_k", "ENCORE__TRAINING__LOSS": "sampled_softmax"},
         "training.train_target next_k needs training.loss full_softmax"),
        ({"ENCORE__TRAINING__TRAIN_TARGET": "next_click"}, "training.train_target must be"),
        ({"ENCORE__TRAINING__ENSEMBLE_SEEDS": "0"}, "training.ensemble_seeds must be >= 1"),
        ({"ENCORE__TRAINING__ENSEMBLE_SEEDS": "3", "ENCORE__TRAINING__MODELS": "sasrec,smoe_bst"},
         "training.ensemble_seeds > 1 does not apply to smoe_bst"),
    ],
)
def test_bad_values_fail_with_their_name(tmp_path, env, message):
    with pytest.raises(ConfigError, match=message):
        load_config({"ENCORE_HOME": str(tmp_path), **env})


