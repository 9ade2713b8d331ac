"""Train one sequence model for a run date, track it in MLflow, register it.

CLI::

    python -m training.train --model sasrec --contrastive item --run-date 2026-10-30 \
        [--epochs 5] [--batch-size 256] [--lr 1e-3] [--loss full_softmax] [--seed 1] \
        [--device cpu] [--no-register] [--no-resume]
    python -m training.train --model smoe_bst --phns-mix MEDIUM --run-date 2026-10-30 \
        [--soft-labels 1.0,0.6,0.3] [--ctr-weight 0.5] [--completion-weight 0.5] [--entropy-weight 0.01]

The DAG calls ``train_model(cfg, run_date, model_name, **overrides)``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
from pathlib import Path

import torch

from encore.core.config import ConfigError, EncoreConfig, load_config
from training.baselines import BASELINES
from training.data import SequenceData
from training.models import MODELS, build_model
from training.trainer import Trainer, TrainSettings, seed_everything
from training.user_features import USER_FEATURE_COLUMNS, attach_users

MODEL_SETTINGS = ("hidden", "layers", "heads", "dropout", "prediction_layer", "mask_prob", "gate_noise",
                  "gate_temperature", "experts", "expert_windows")
MULTITASK_SETTINGS = ("phns_mix", "phns_uniform_share", "soft_labels", "rank_weight", "ctr_weight", "completion_weight",
                      "entropy_weight", "engagement_alpha", "ctr_positions")


def variant_name(model_name: str, contrastive: str) -> str:
    """``sasrec``, ``sasrec+cl_item``, ``bert4rec+cl_encoder`` ..."""
    return model_name if contrastive == "none" else f"{model_name}+cl_{contrastive}"


def train_model(
    cfg: EncoreConfig,
    run_date: str | dt.date,
    model_name: str = "sasrec",
    *,
    data: SequenceData | None = None,
    dataset: str | None = None,
    register: bool = True,
    resume: bool = True,
    **overrides,
) -> dict:
    """Train ``model_name`` on the ``sequences`` partition of ``run_date`` (or on
    ``data``), log to MLflow, register the model, write MODEL_RUN rows.

    ``overrides``: any ``TrainSettings`` field (epochs, lr, contrastive, seed, ...)
    or model setting (hidden, layers, heads, dropout, mask_prob); ``None`` = config.
    Returns ``run_id``, ``model_name`` (variant), ``model_version``, ``valid`` and
    ``test`` metric dicts, ``best_epoch``, ``model_runs_path``.
    """
    from training import tracking
    from training.baselines import fit_baseline

    if model_name in BASELINES:
        return fit_baseline(cfg, run_date, model_name, data=data, dataset=dataset, register=register,
                            seed=overrides.get("seed"), max_seq_len=overrides.get("max_seq_len"))
    if model_name not in MODELS:
        raise ConfigError(f"unknown model {model_name!r}; known: {sorted(MODELS)}")
    run_date = str(run_date)
    model_overrides = {k: overrides.pop(k) for k in list(overrides) if k in MODEL_SETTINGS}
    multitask_overrides = {k: overrides.pop(k) for k in list(overrides) if k in MULTITASK_SETTINGS}
    if model_name.startswith("attrec"):
        overrides["contrastive"] = "none"  # AttRec trains with its own hinge loss, no InfoNCE term
    settings = TrainSettings.from_config(cfg.training, **overrides)
    model_settings = {name: getattr(cfg.training, name) for name in MODEL_SETTINGS if hasattr(cfg.training, name)}
    model_settings.update({k: v for k, v in model_overrides.items() if v is not None})
    if model_settings["hidden"] % model_settings["heads"]:
        raise ConfigError(f"hidden={model_settings['hidden']} must be divisible by heads={model_settings['heads']}")

    data = data if data is not None else SequenceData.load(cfg, run_date)
    dataset = dataset or cfg.data.source
    variant = variant_name(model_name, settings.contrastive)
    seed_everything(settings.seed)
    if model_name == "smoe_bst" and cfg.training.user_features:
        model_settings["n_user_features"] = len(USER_FEATURE_COLUMNS)
    model = build_model(model_name, data.n_items, max_seq_len=settings.max_seq_len, n_users=data.n_users, **model_settings)
    objective = pools = None
    if model_name == "smoe_bst":
        from training.multitask import multitask_setup

        objective, pools, mix = multitask_setup(cfg, run_date, data, model, settings.seed, **multitask_overrides)
        variant = f"{model_name}+phns_{mix.lower()}"  # the InfoNCE setting does not apply
    elif model_name.startswith("attrec"):
        from training.models.attrec import HingeObjective

        model.attach_users(data.user_ids)
        objective = HingeObjective()
    checkpoint_dir = Path(cfg.paths.checkpoints) / dataset / variant / run_date / f"seed{settings.seed}"

    run_name = f"{variant}-{run_date}-seed{settings.seed}"
    with tracking.start_run(cfg, run_name, tags={"run_date": run_date, "dataset": dataset, "model_name": variant}) as run:
        import mlflow

        mlflow.log_params(
            {
                **dataclasses.asdict(settings),
                **dataclasses.asdict(model.config),
                "model": model_name,
                "variant": variant,
                "run_date": run_date,
                "dataset": dataset,
                "n_users": data.n_users,
                "n_events": len(data.items),
            }
        )
        if objective is not None:
            mlflow.log_params(objective.params)
        trainer = Trainer(
            model, data, settings, checkpoint_dir=checkpoint_dir, on_epoch_end=tracking.log_epoch, objective=objective
        )
        result = trainer.fit(resume=resume)
        test = trainer.evaluate("test")
        metrics = {"valid": result.best_valid, "test": test}
        if model_name == "smoe_bst":
            from training.multitask import gate_usage, evaluate_phns_sets

            metrics.update(evaluate_phns_sets(cfg, trainer.model, data, pools, settings.max_seq_len, trainer.device))
            metrics["test"] = {**test, **gate_usage(trainer.model, data.split("test", settings.max_seq_len), trainer.device)}
        tracking.log_final_metrics(metrics)
        mlflow.log_metric("best_epoch", result.best_epoch)
        meta = {
            "run_date": run_date,
            "dataset": dataset,
            "seed": settings.seed,
            "mlflow_run_id": run.info.run_id,
            "valid_ndcg_at_10": result.best_valid.get("ndcg@10"),
            "test_ndcg_at_10": test.get("ndcg@10"),
            "test_skip_mrr": test.get("skip_mrr"),
        }
        version = tracking.log_model_bundle(cfg, trainer.model, data.vocab, variant, meta, register=register)
        rows = tracking.model_run_rows(run_date, run.info.run_id, variant, version, dataset, settings.seed, metrics)
        path = tracking.write_model_runs(cfg, run_date, rows)
    return {
        "run_id": run.info.run_id,
        "model_name": variant,
        "registered_model": cfg.promotion.registered_model if register else None,
        "model_version": version,
        "valid": result.best_valid,
        "test": test,
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "model_runs_path": path,
        **{split: m for split, m in metrics.items() if split not in ("valid", "test")},  # phns_hard / easy
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
    data = SequenceData.load(cfg, run_date, vocab=bundle.vocab)
    attach_users(bundle.model, data.user_ids, cfg, run_date)
    device = next(bundle.model.parameters()).device if isinstance(bundle.model, torch.nn.Module) else "cpu"
    return evaluate_model(
        bundle.model, data.split(split, bundle.max_seq_len), data.n_items,
        exclude_history=cfg.inference.exclude_history, device=device,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="sasrec", choices=sorted(MODELS) + sorted(BASELINES))
    parser.add_argument("--run-date", required=True)
    parser.add_argument("--contrastive", choices=["none", "item", "encoder"])
    parser.add_argument("--loss", choices=["sampled_softmax", "full_softmax"])
    parser.add_argument("--train-target", choices=["next_positive", "next_item"],
                        help="training target: next non-skipped item (default) or every next item")
    for name, kind in [("epochs", int), ("batch-size", int), ("lr", float), ("weight-decay", float),
                       ("n-sampled", int), ("cl-weight", float), ("cl-temperature", float), ("patience", int),
                       ("seed", int), ("max-seq-len", int), ("hidden", int), ("layers", int), ("heads", int),
                       ("dropout", float), ("window-stride", int)]:
        parser.add_argument(f"--{name}", type=kind)
    parser.add_argument("--phns-mix", type=str.upper, help="S-MoE-BST: HARD | MEDIUM | EASY | UNIFORM (no PHNS)")
    parser.add_argument("--phns-uniform-share", type=float,
                        help="S-MoE-BST: share of negatives drawn uniformly from unseen items (default phns.uniform_share)")
    for name in ("rank-weight", "ctr-weight", "completion-weight", "entropy-weight", "engagement-alpha",
                 "gate-noise", "gate-temperature"):
        parser.add_argument(f"--{name}", type=float)
    parser.add_argument("--soft-labels", type=lambda text: tuple(float(x) for x in text.split(",")),
                        help="S-MoE-BST next-K soft label strengths, e.g. 1.0,0.6,0.3 (1.0 = next item only)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--no-bf16", action="store_true")
    parser.add_argument("--no-register", action="store_true")
    parser.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    overrides = {
        k: v for k, v in vars(args).items()
        if k not in {"model", "run_date", "no_bf16", "no_register", "no_resume", "quiet"} and v is not None
    }
    if args.no_bf16:
        overrides["bf16"] = False
    if args.quiet:
        overrides["progress"] = False
    try:
        dt.date.fromisoformat(args.run_date)
        result = train_model(
            load_config(), args.run_date, args.model, register=not args.no_register, resume=not args.no_resume, **overrides
        )
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
