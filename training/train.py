"""Train one model of the registry (``training.specs``) for a run date, track it in MLflow, register it.

CLI::

    python -m training.train --model sasrec --contrastive item --run-date 2026-10-30 \
        [--epochs 5] [--batch-size 256] [--lr 1e-3] [--loss full_softmax] [--seed 1] \
        [--device cpu] [--no-register] [--no-resume]
    python -m training.train --model smoe_bst --phns-mix MEDIUM --run-date 2026-10-30 \
        [--ctr-weight 0.5] [--completion-weight 0.5] [--entropy-weight 0.01]
    python -m training.train --model wrmf_neg --run-date 2026-10-30

The DAG calls ``train_model(cfg, run_date, model_name)``. Every model, neural or baseline,
goes through the same path: its spec fits it on the night's marts, then the run is tracked
(params, metrics, MODEL_RUN rows) and the model registered.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Callable

from encore.core.config import ConfigError, EncoreConfig, load_config
from training import distributed
from training.data import TRAIN_TARGETS, SequenceData
from training.losses import CONTRASTIVE, LOSSES
from training.registry import MODEL_NAMES
from training.specs import model_device, model_spec
from training.user_features import attach_users


def train_model(
    cfg: EncoreConfig,
    run_date: dt.date | str,
    model_name: str = "sasrec",
    *,
    data: SequenceData | None = None,
    dataset: str | None = None,
    register: bool = True,
    resume: bool = True,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
    **overrides,
) -> dict:
    """Fit ``model_name`` on the run date's marts (or on ``data``), log to MLflow, register the
    model, write MODEL_RUN rows.

    ``overrides``: any ``TrainSettings`` field (epochs, lr, contrastive, seed, ...), model
    config field (hidden, layers, heads, dropout, ...) or objective setting the model's spec
    takes; anything else is rejected. ``None`` = config. ``on_epoch_end(epoch, row)``: called
    with each epoch's losses and validation metrics after they are logged (a search prunes
    there). Returns ``run_id``, ``model_name`` (variant), ``model_version``, ``valid`` and
    ``test`` metric dicts, ``best_epoch``, ``model_runs_path`` and any extra evaluation
    (S-MoE-BST: ``phns_hard``, ``easy``).
    """
    from training import tracking

    spec = model_spec(model_name)
    spec.check(cfg, overrides)
    run_date = dt.date.fromisoformat(str(run_date))
    data = data if data is not None else SequenceData.load(cfg, run_date)
    dataset = dataset or cfg.data.source
    checkpoints = Path(cfg.paths.checkpoints) / dataset / run_date.isoformat()
    distributed.init_from_env(overrides.get("device") or cfg.training.device)  # under torchrun: join the other ranks
    if not distributed.is_main():  # torchrun: ranks > 0 only train; rank 0 evaluates, tracks and registers
        fitted = spec.fit(cfg, run_date, data, dict(overrides), checkpoints=checkpoints, resume=resume, on_epoch_end=None)
        return {"model_name": fitted.variant, "rank": distributed.rank(), "best_epoch": fitted.best_epoch}
    seed = cfg.training.seed if overrides.get("seed") is None else overrides["seed"]
    with tracking.start_run(cfg, f"{model_name}-{run_date}-seed{seed}",
                            tags={"run_date": run_date.isoformat(), "dataset": dataset, "model": model_name}) as run:
        import mlflow

        def log_epoch(epoch: int, row: dict[str, float]) -> None:
            tracking.log_epoch(epoch, row)
            if on_epoch_end:
                on_epoch_end(epoch, row)

        fitted = spec.fit(cfg, run_date, data, dict(overrides), checkpoints=checkpoints, resume=resume,
                          on_epoch_end=log_epoch)
        mlflow.set_tag("model_name", fitted.variant)
        mlflow.log_params({**fitted.params, "model": model_name, "variant": fitted.variant,
                           "run_date": run_date.isoformat(), "dataset": dataset, "n_users": data.n_users,
                           "n_events": len(data.items)})
        metrics = {"valid": fitted.valid, "test": fitted.test, **fitted.extra}
        tracking.log_final_metrics(metrics)
        mlflow.log_metric("best_epoch", fitted.best_epoch)
        meta = {
            "run_date": run_date.isoformat(),
            "dataset": dataset,
            "seed": fitted.params.get("seed", seed),
            "mlflow_run_id": run.info.run_id,
            "valid_ndcg_at_10": fitted.valid.get("ndcg@10"),
            "test_ndcg_at_10": fitted.test.get("ndcg@10"),
            "test_skip_mrr": fitted.test.get("skip_mrr"),
        }
        version = tracking.log_model_bundle(cfg, fitted.model, data.vocab, fitted.variant, meta, register=register)
        rows = tracking.model_run_rows(run_date, run.info.run_id, fitted.variant, version, dataset,
                                       int(meta["seed"]), metrics)
        path = tracking.write_model_runs(cfg, run_date, rows)
    return {
        "run_id": run.info.run_id,
        "model_name": fitted.variant,
        "registered_model": cfg.promotion.registered_model if register else None,
        "model_version": version,
        "valid": fitted.valid,
        "test": fitted.test,
        "best_epoch": fitted.best_epoch,
        "stopped_early": fitted.stopped_early,
        "model_runs_path": path,
        **fitted.extra,
    }


def evaluate_registered_version(
    cfg: EncoreConfig, run_date: str | dt.date, version: str, split: str = "valid"
) -> dict[str, float]:
    """Metrics of registered version ``version`` on ``split`` of the ``run_date``
    sequences (the promotion gate's ``evaluate(version)``). Items unknown to the
    model's vocabulary count as padding; users whose target is unknown are skipped."""
    from training.evaluation import evaluate_model
    from training.inference import load_model_for_inference

    bundle = load_model_for_inference(cfg, f"models:/{cfg.promotion.registered_model}/{version}")
    data = SequenceData.load(cfg, run_date, vocab=bundle.vocab, with_targets=False)
    attach_users(bundle.model, data.user_ids, cfg, run_date)
    return evaluate_model(bundle.model, data.split(split, bundle.max_seq_len), data.n_items,
                          exclude=cfg.training.eval_exclude, device=model_device(bundle.model))


def evaluate_popularity(cfg: EncoreConfig, run_date: str | dt.date, split: str = "valid") -> dict[str, float]:
    """Metrics of the most-popular baseline, fitted on the ``run_date`` training split, on
    ``split``: the floor below which the promotion gate rejects a model."""
    from training.baselines import build_baseline
    from training.evaluation import evaluate_model

    data = SequenceData.load(cfg, run_date)
    length = cfg.training.max_seq_len
    model = build_baseline("most_pop", data.n_items, max_seq_len=length)
    model.fit(data.split("train", length), data.user_ids)
    return evaluate_model(model, data.split(split, length), data.n_items, exclude=cfg.training.eval_exclude)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="sasrec", choices=sorted(MODEL_NAMES))
    parser.add_argument("--run-date", required=True)
    parser.add_argument("--dataset", help="the data's name in MLflow, model_runs and the checkpoint path "
                                          "(default: data.source)")
    parser.add_argument("--contrastive", choices=CONTRASTIVE)
    parser.add_argument("--loss", choices=LOSSES)
    parser.add_argument("--train-target", choices=TRAIN_TARGETS,
                        help="training target: next non-skipped item (default), every next item, or the next K "
                             "non-skipped items weighted by their soft labels (full_softmax)")
    for name, kind in [("epochs", int), ("batch-size", int), ("lr", float), ("weight-decay", float),
                       ("n-sampled", int), ("cl-weight", float), ("cl-temperature", float), ("patience", int),
                       ("seed", int), ("max-seq-len", int), ("hidden", int), ("layers", int), ("heads", int),
                       ("dropout", float), ("attention-dropout", float), ("window-stride", int), ("label-smoothing", float),
                       ("gbce-negatives", int), ("gbce-calibration", float), ("ema-decay", float),
                       ("ema-epochs", float)]:
        parser.add_argument(f"--{name}", type=kind)
    parser.add_argument("--exclude-seen", action="store_true", default=None,
                        help="full softmax without the items each position has already read (data without repeats)")
    parser.add_argument("--phns-mix", type=str.upper,
                        help="S-MoE-BST: HARD | MEDIUM | EASY | UNIFORM (no PHNS); default phns.default_mix")
    for name in ("rank-weight", "ctr-weight", "completion-weight", "entropy-weight", "engagement-alpha",
                 "phns-sampling-correction", "gate-noise", "gate-temperature"):
        parser.add_argument(f"--{name}", type=float)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--no-bf16", action="store_true")
    parser.add_argument("--no-register", action="store_true")
    parser.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--result-json", type=Path, help="also write the result there (under torchrun: rank 0's)")
    args = parser.parse_args(argv)
    overrides = {
        k: v for k, v in vars(args).items()
        if k not in {"model", "run_date", "dataset", "no_bf16", "no_register", "no_resume", "quiet", "result_json"}
        and v is not None
    }
    if args.no_bf16:
        overrides["bf16"] = False
    if args.quiet:
        overrides["progress"] = False
    try:
        run_date = dt.date.fromisoformat(args.run_date)
        result = train_model(
            load_config(), run_date, args.model, register=not args.no_register, resume=not args.no_resume,
            dataset=args.dataset, **overrides
        )
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2, default=str))
    if args.result_json and distributed.is_main():
        args.result_json.write_text(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
