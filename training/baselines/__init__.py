"""Non-sequential baselines, each with and without negative feedback (seed 000:
does negative feedback help WRMF / BPR too?).

Every baseline has a config dataclass (``n_items`` first, ``max_seq_len`` for the
window it scores), ``fit(train_split, user_ids)`` and ``score_all(seqs, context=None)``,
so ``training.evaluation.evaluate_model`` and batch inference treat it like a
sequence model. ``BASELINES`` maps a registry / CLI name to (config class,
class, fixed settings); ``fit_baseline`` is the DAG's entry point (also reached
through ``training.train.train_model`` with a baseline name).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from training.baselines.knn import ItemKNN, ItemKNNConfig, SessionKNN, SessionKNNConfig
from training.baselines.matrix_factorization import BPR, WRMF, BPRConfig, WRMFConfig
from training.baselines.popularity import MostPopular, PopularityConfig
from training.user_features import attach_users

RECENT_EVENTS = 10

BASELINES: dict[str, tuple[type, type, dict]] = {}
for _name, _config, _cls, _fixed in [
    ("most_pop", PopularityConfig, MostPopular, {}),
    ("most_pop_recent", PopularityConfig, MostPopular, {"recent_events": RECENT_EVENTS}),
    ("item_knn", ItemKNNConfig, ItemKNN, {}),
    ("session_knn", SessionKNNConfig, SessionKNN, {}),
    ("wrmf", WRMFConfig, WRMF, {}),
    ("bpr", BPRConfig, BPR, {}),
]:
    BASELINES[_name] = (_config, _cls, _fixed)
    BASELINES[f"{_name}_neg"] = (_config, _cls, {**_fixed, "negative_feedback": True})


def build_baseline(name: str, n_items: int, **settings):
    """Instantiate ``name`` with the settings its config knows (others ignored)."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; known: {sorted(BASELINES)}")
    config_cls, cls, fixed = BASELINES[name]
    known = {f.name for f in dataclasses.fields(config_cls)}
    values = {k: v for k, v in settings.items() if k in known and v is not None}
    return cls(config_cls(n_items=n_items, **{**fixed, **values}))


def fit_baseline(
    cfg,
    run_date: str | dt.date,
    name: str,
    *,
    data=None,
    dataset: str | None = None,
    register: bool = True,
    seed: int | None = None,
    max_seq_len: int | None = None,
    **settings,
) -> dict:
    """Fit baseline ``name`` on the train split of the ``run_date`` sequences (or
    ``data``), evaluate valid + test with the shared full-ranking evaluation, log
    the run to MLflow, register it (pyfunc, like the sequence models) and write
    its MODEL_RUN rows. Returns the same keys as ``train_model``."""
    import mlflow

    from training import tracking
    from training.data import SequenceData
    from training.evaluation import evaluate_model

    run_date = str(run_date)
    seed = cfg.training.seed if seed is None else seed
    max_seq_len = max_seq_len or cfg.training.max_seq_len
    data = data if data is not None else SequenceData.load(cfg, run_date)
    dataset = dataset or cfg.data.source
    model = build_baseline(name, data.n_items, max_seq_len=max_seq_len, seed=seed, **settings)
    run_name = f"{name}-{run_date}-seed{seed}"
    with tracking.start_run(cfg, run_name, tags={"run_date": run_date, "dataset": dataset, "model_name": name}) as run:
        mlflow.log_params(
            {**dataclasses.asdict(model.config), "model": name, "variant": name, "run_date": run_date,
             "dataset": dataset, "seed": seed, "n_users": data.n_users, "n_events": len(data.items)}
        )
        model.fit(data.split("train", max_seq_len), data.user_ids)
        attach_users(model, data.user_ids)
        exclude = cfg.inference.exclude_history
        metrics = {
            split: evaluate_model(model, data.split(split, max_seq_len), data.n_items, exclude_history=exclude)
            for split in ("valid", "test")
        }
        tracking.log_final_metrics(metrics)
        meta = {
            "run_date": run_date, "dataset": dataset, "seed": seed, "mlflow_run_id": run.info.run_id,
            "valid_ndcg_at_10": metrics["valid"].get("ndcg@10"), "test_ndcg_at_10": metrics["test"].get("ndcg@10"),
            "test_skip_mrr": metrics["test"].get("skip_mrr"),
        }
        version = tracking.log_model_bundle(cfg, model, data.vocab, name, meta, register=register)
        rows = tracking.model_run_rows(run_date, run.info.run_id, name, version, dataset, seed, metrics)
        path = tracking.write_model_runs(cfg, run_date, rows)
    return {
        "run_id": run.info.run_id,
        "model_name": name,
        "registered_model": cfg.promotion.registered_model if register else None,
        "model_version": version,
        "valid": metrics["valid"],
        "test": metrics["test"],
        "best_epoch": 0,
        "stopped_early": False,
        "model_runs_path": path,
    }


__all__ = ["BASELINES", "build_baseline", "fit_baseline", "MostPopular", "ItemKNN", "SessionKNN", "WRMF", "BPR"]
