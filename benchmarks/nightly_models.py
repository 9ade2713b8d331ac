"""Which models the nightly should train: every challenger on the same night's marts, several seeds.

CLI::

    python -m benchmarks.nightly_models --dataset synthetic_music|ml-100k --seeds 0 1 2 \\
        [--configs sasrec sasrec_seed_defaults ...] [--models session_knn wrmf_neg smoe_bst ...] \\
        [--protocol nightly|recbole|recbole_feedback] [--sequence-events N] [--epochs N] [--threads N] \\
        [--ensemble N] [--home /tmp/encore_nightly_models] [--out bench_results/nightly_models_<dataset>.json]

The data goes through the nightly's own path (``benchmarks.datasets.prepare_night``: lake,
Spark, dbt marts) as of the dataset's last day, in the scratch state dir ``--home``: the
default embedded dataset (``synthetic_music``: 1,500 users, 30 days) or MovieLens-100k. Each
SASRec configuration is a set of ``train_model`` settings; the other models (baselines,
S-MoE-BST with the default PHNS mix) are fitted as the nightly fits them. Protocol: the
nightly's (temporal leave-last-out on positives, full ranking, the user's whole history
excluded); ``--protocol recbole`` (MovieLens) makes every rating an interaction, so the split is
RecBole's leave-one-out by time; ``recbole_feedback`` keeps that split and those targets and flags
each input event rated <= 2 as a skip, as the nightly's marts do (``PROTOCOLS``). Numbers are the
test split at the best validation epoch, mean ± sample std over seeds. ``--ensemble N`` also scores
each SASRec configuration's seeds in consecutive groups of N as one model (the mean of the
members' log-softmax scores; row ``<config>_ensembleN``, one entry per group); with
``--ensemble-from REPORT ...`` it trains nothing and groups the runs of earlier reports (with
``--ensemble 1`` it re-scores each run's kept model: row ``<config>_kept``). Prints
a markdown table and writes the JSON report, with the commit, thread count and platform it ran
under: a seed's run reproduces to the digit at the same code, marts, thread count and machine,
while another thread count or CPU sums in another order and lands elsewhere within the seeds' spread.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchmarks.experiments import EMA_OFF, SASREC_ATTENTION_DROPOUT, format_mean_std, mean_std, save_report
from training.registry import MODEL_NAMES, SEQUENCE_MODELS

# SASRec configurations: overrides of the config's training section. "sasrec" is the nightly's
# own (the defaults); "sasrec_attention_dropout" the defaults before SASRec dropped attention
# dropout, "sasrec_no_ema" the defaults before the moving average of the weights joined them,
# "sasrec_seed_defaults" the nightly before this benchmark chose them (seed 000's prediction
# layer, sampled softmax, 3 epochs, no skip flag in the input); the others move one lever away
# from those (README "Which models compete"). All but "sasrec" were measured with attention
# dropout and without the moving average (SASREC_ATTENTION_DROPOUT, EMA_OFF) unless they set
# otherwise, so each keeps the figures the README gives for it.
SEED_DEFAULTS = dict(loss="sampled_softmax", prediction_layer=True, feedback_embedding=False, epochs=3, **EMA_OFF,
                     **SASREC_ATTENTION_DROPOUT)
MEASURED: dict[str, dict] = {
    "sasrec_no_ema": {},
    "sasrec_seed_defaults": SEED_DEFAULTS,
    "sasrec_prediction_layer": dict(prediction_layer=True),
    "sasrec_no_feedback": dict(feedback_embedding=False),
    "sasrec_next_item": dict(train_target="next_item"),
    "sasrec_next_item_no_feedback": dict(train_target="next_item", feedback_embedding=False),
    "sasrec_cosine": dict(train_target="next_item", feedback_embedding=False, lr=2e-3, lr_schedule="cosine"),
    "sasrec_no_cl": dict(contrastive="none"),
    "sasrec_time": dict(time_embedding=True),
    "sasrec_ema999": dict(ema_decay=0.999),
    "sasrec_time_ema999": dict(time_embedding=True, ema_decay=0.999),
    "sasrec_time_attention": dict(time_attention=True),
    "sasrec_time_ema6ep": dict(time_embedding=True, ema_epochs=6),
    "sasrec_attention_dropout": dict(ema_epochs=6),
    "sasrec_ema3ep": dict(ema_epochs=3, attention_dropout=0.0),  # today's defaults with a 3-epoch span
    "sasrec_ema10ep": dict(ema_epochs=10, attention_dropout=0.0),  # and with a 10-epoch span
    "sasrec_batch16": dict(batch_size=16),
    "sasrec_batch16_no_cl": dict(batch_size=16, contrastive="none"),
    "sasrec_small": dict(batch_size=16, hidden=64, heads=2, weight_decay=0.0),
    "sasrec_long_input_batch16": dict(max_seq_len=200, batch_size=16),
    "sasrec_dropout05_batch16": dict(dropout=0.5, batch_size=16),
    "sasrec_batch16_patience8": dict(batch_size=16, patience=8),
    "sasrec_batch8": dict(batch_size=8),
    "sasrec_stride10": dict(window_stride=10),
    "sasrec_batch16_smoothing01": dict(batch_size=16, label_smoothing=0.1),
    "sasrec_batch16_lr5e-4": dict(batch_size=16, lr=5e-4),
    "sasrec_batch16_hidden256": dict(batch_size=16, hidden=256),
    "sasrec_batch16_ema999": dict(batch_size=16, ema_decay=0.999),
    "sasrec_batch16_ema999_smoothing01": dict(batch_size=16, ema_decay=0.999, label_smoothing=0.1),
    "sasrec_batch16_untied": dict(batch_size=16, tied_embeddings=False),
    "sasrec_batch16_next_k": dict(batch_size=16, train_target="next_k"),
    "sasrec_batch16_stride10_next_k": dict(batch_size=16, window_stride=10, train_target="next_k"),
    "sasrec_batch16_gbce": dict(batch_size=16, loss="gbce", gbce_negatives=256, gbce_calibration=0.75),
    "sasrec_batch16_stride25": dict(batch_size=16, window_stride=25),
    "sasrec_batch16_stride10": dict(batch_size=16, window_stride=10),
    "sasrec_batch16_lr2e-3": dict(batch_size=16, lr=2e-3),
    "sasrec_batch16_layers1": dict(batch_size=16, layers=1),
    "sasrec_batch16_exclude_seen": dict(batch_size=16, exclude_seen=True),
    "sasrec_batch16_cosine": dict(batch_size=16, lr_schedule="cosine"),
    "sasrec_batch16_ensemble5": dict(batch_size=16, ensemble_seeds=5),
    "sasrec_batch16_time": dict(batch_size=16, time_embedding=True),
    "sasrec_batch16_time_ema999": dict(batch_size=16, time_embedding=True, ema_decay=0.999),
    "sasrec_batch16_time_attention": dict(batch_size=16, time_attention=True),
    "sasrec_batch16_time_both": dict(batch_size=16, time_embedding=True, time_attention=True),
    "sasrec_batch16_duorec": dict(batch_size=16, contrastive="dropout", cl_weight=0.1, cl_temperature=1.0),
}
CONFIGS: dict[str, dict] = {"sasrec": {}, **{name: {**EMA_OFF, **SASREC_ATTENTION_DROPOUT, **settings}
                                              for name, settings in MEASURED.items()}}
# registry models fitted with the nightly's own settings (the config's training section)
MODELS = ("most_pop", "item_knn", "session_knn", "wrmf", "wrmf_neg", "smoe_bst")
def model_of(name: str) -> str:
    return "sasrec" if name in CONFIGS else name


COLUMNS = ("ndcg@10", "hr@10", "mrr@10", "skip_mrr")
# evaluation protocols of the --protocol option (recbole*: MovieLens only)
PROTOCOLS = {
    "nightly": "ratings <= 2 are negative feedback: inputs carry the skip flag, targets and split are the positives",
    "recbole": "every rating an interaction and a target: RecBole's leave-one-out by time, no feedback in the inputs",
    "recbole_feedback": "RecBole's split and targets (every rating), each input event flagged as skipped when its "
                        "rating is <= 2, as the nightly's model reads its inputs",
}


def ensemble_of_runs(cfg, n_items: int, runs: list[dict]):
    """The ``SeedEnsemble`` of SASRec ``runs`` (rows of this CLI's reports), members loaded from
    their MLflow runs."""
    from training.inference import load_model_for_inference
    from training.models.ensemble import SeedEnsemble

    bundles = [load_model_for_inference(cfg, f"runs:/{r['run_id']}/model", device="cpu") for r in runs]
    return SeedEnsemble.of([b.model for b in bundles], "sasrec", n_items, bundles[0].max_seq_len)


def ensemble_metrics(cfg, data, ensemble) -> dict[str, dict[str, float]]:
    """``{"valid": ..., "test": ...}`` metrics of ``ensemble`` as the nightly evaluates a model."""
    from training.evaluation import evaluate_model

    length = ensemble.config.max_seq_len
    return {split: evaluate_model(ensemble, data.split(split, length), data.n_items, exclude=cfg.training.eval_exclude)
            for split in ("valid", "test")}


def ensemble_rows(cfg, data, runs: list[dict], size: int) -> list[dict]:
    """Valid and test metrics of each consecutive group of ``size`` runs scored as one
    ``SeedEnsemble`` (a last, smaller group is dropped): what ``training.ensemble_seeds`` trains,
    from runs already made. ``size`` 1 re-scores each run's kept model alone (the log-softmax of
    one model ranks as its scores do)."""
    rows = []
    for start in range(0, len(runs) - size + 1, size):
        group = runs[start:start + size]
        metrics = ensemble_metrics(cfg, data, ensemble_of_runs(cfg, data.n_items, group))
        rows.append({"seeds": [r["seed"] for r in group], "seconds": sum(r["seconds"] for r in group), **metrics})
    return rows


def with_input_feedback(data, rated):
    """``data`` (every rating an interaction) with the skip flags of ``rated`` (the same events
    prepared with ratings <= 2 as negative feedback): RecBole's split and targets, the nightly's
    inputs. Raises if the two preparations do not hold the same users and events in the same order."""
    import dataclasses

    import numpy as np

    for name in ("user_ids", "offsets", "items"):
        if not np.array_equal(getattr(data, name), getattr(rated, name)):
            raise ValueError(f"the two preparations differ in {name}: cannot carry the skip flags across")
    if data.vocab.item_ids != rated.vocab.item_ids:
        raise ValueError("the two preparations have different item vocabularies")
    return dataclasses.replace(data, is_skip=rated.is_skip.copy())


def prepare_data(dataset: str, protocol: str, sequence_events: int, home: str):
    """(config, run date, SequenceData) of ``dataset``'s night under ``protocol``, keeping
    ``sequence_events`` events per user (0 = the config's), in a state dir of its own under
    ``home`` (the marts differ by protocol and events kept); prepared once, then reused.
    ``recbole_feedback`` reads both the ``recbole`` and the ``nightly`` marts."""
    from benchmarks.datasets import experiment_config, prepared
    from training.data import SequenceData

    from encore.core.config import SessionConfig

    if protocol == "recbole_feedback":
        cfg, run_date, data = prepare_data(dataset, "recbole", sequence_events, home)
        _, rated_date, rated = prepare_data(dataset, "nightly", sequence_events, home)
        if rated_date != run_date:
            raise ValueError(f"the two preparations have different run dates: {run_date} vs {rated_date}")
        data = with_input_feedback(data, rated)
        print(f"input feedback: {int(data.is_skip.sum())} of {len(data.is_skip)} events flagged as skipped", flush=True)
        return cfg, run_date, data
    events = sequence_events or SessionConfig().sequence_events
    overrides = {"training": {"user_features": False}, "sessions": {"sequence_events": events}}
    if protocol == "recbole":  # every rating an interaction: no rating is negative feedback
        overrides["labels"] = {"negative_rating_at_most": -1}
    cfg = experiment_config(Path(home) / f"{dataset}-{protocol}-events{events}", **overrides)
    started = time.perf_counter()
    run_date = prepared(cfg, dataset)
    data = SequenceData.load(cfg, run_date)
    print(f"{dataset} as of {run_date}: {data.n_users} users, {data.n_items} items "
          f"({time.perf_counter() - started:.0f} s to prepare)", flush=True)
    return cfg, run_date, data


def apply_common_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Checks and applies the options this CLI shares with ``benchmarks.sasrec_search``."""
    if args.protocol.startswith("recbole") and args.dataset != "ml-100k":
        parser.error(f"--protocol {args.protocol} is defined for ml-100k (ratings) only")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    # the thread count orders the floating-point sums: a seed's figures reproduce at the same count only
    print(f"torch {torch.__version__}, threads: {torch.get_num_threads()}", flush=True)


def earlier_runs(reports: list[str], configs: list[str]) -> tuple[list[int], dict[str, list[dict]]]:
    """The seeds and the ``configs``' runs of earlier reports of this CLI (same ``--home``), in seed order."""
    runs: dict[str, list[dict]] = {}
    for path in reports:
        for name, rows in json.loads(Path(path).read_text())["runs"].items():
            if name in configs:
                runs.setdefault(name, []).extend(rows)
    missing = [name for name in configs if name not in runs]
    if missing:
        raise SystemExit(f"no runs of {missing} in {reports}")
    runs = {name: sorted(rows, key=lambda r: r["seed"]) for name, rows in runs.items()}
    return sorted({r["seed"] for rows in runs.values() for r in rows}), runs


def run(args) -> dict:
    from training.train import train_model

    cfg, run_date, data = prepare_data(args.dataset, args.protocol, args.sequence_events, args.home)
    runs: dict[str, list[dict]] = {}
    if args.ensemble_from:  # score earlier runs' models, train nothing
        args.seeds, runs = earlier_runs(args.ensemble_from, args.configs)
    for seed in [] if args.ensemble_from else args.seeds:
        for name in [*args.configs, *args.models]:
            settings = CONFIGS.get(name, {}) | ({"progress": False} if model_of(name) in SEQUENCE_MODELS else {})
            if args.epochs and name in CONFIGS:
                settings["epochs"] = args.epochs
            model = model_of(name)
            began = time.perf_counter()
            # a checkpoint directory per configuration: runs of several configurations side by side never share one
            # recbole_feedback shares the recbole state dir, so the protocol is part of the name
            out = train_model(cfg, run_date, model, data=data, dataset=f"{args.dataset}-{args.protocol}-{name}",
                              register=False, resume=False, seed=seed, **settings)
            row = {"seed": seed, "run_id": out["run_id"], "seconds": round(time.perf_counter() - began, 1), "best_epoch": out["best_epoch"],
                   "valid": out["valid"], "test": out["test"]}
            runs.setdefault(name, []).append(row)
            print(f"{name:28s} seed {seed}: test ndcg@10 {out['test']['ndcg@10']:.4f} "
                  f"(valid {out['valid']['ndcg@10']:.4f}, best epoch {out['best_epoch']}, {row['seconds']:.0f} s)",
                  flush=True)
    if args.ensemble > 1 or args.ensemble_from:
        label = "kept" if args.ensemble == 1 else f"ensemble{args.ensemble}"
        for name in args.configs:
            for row in ensemble_rows(cfg, data, runs[name], args.ensemble):
                runs.setdefault(f"{name}_{label}", []).append(row)
                print(f"{name} {label} of seeds {row['seeds']}: test ndcg@10 {row['test']['ndcg@10']:.4f} "
                      f"(valid {row['valid']['ndcg@10']:.4f})", flush=True)
    summary = {name: {c: mean_std([r["test"].get(c, float("nan")) for r in rows]) for c in COLUMNS}
               | {"seconds": mean_std([r["seconds"] for r in rows])} for name, rows in runs.items()}
    return {"dataset": args.dataset, "protocol": args.protocol, "sequence_events": cfg.sessions.sequence_events,
            "run_date": run_date.isoformat(), "users": data.n_users, "items": data.n_items,
            "seeds": args.seeds, "configs": {n: CONFIGS.get(n) for n in args.configs}, "runs": runs, "summary": summary}


def markdown(report: dict) -> str:
    """The summary as a table; n = the runs (seeds, or ensembles of seeds) behind each row's mean
    ± sample std, and a row of one run shows its value alone."""
    lines = ["| model | n | " + " | ".join(COLUMNS) + " | seconds |", "|---|" + "---:|" * (len(COLUMNS) + 2)]
    for name, cells in report["summary"].items():
        n = cells[COLUMNS[0]]["n"]
        values = [format_mean_std(cells[c]) for c in COLUMNS]
        lines.append(f"| {name} | {n} | " + " | ".join(values) + f" | {cells['seconds']['mean']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.nightly_models", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="synthetic_music", choices=["synthetic_music", "ml-100k"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--configs", nargs="*", default=["sasrec"],
                        help=f"SASRec configurations: {', '.join(CONFIGS)} (with --ensemble-from: the reports' names)")
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=sorted(MODEL_NAMES))
    parser.add_argument("--home", default="/tmp/encore_nightly_models")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--epochs", type=int, help="max epochs of every SASRec configuration (default: its own)")
    parser.add_argument("--protocol", default="nightly", choices=list(PROTOCOLS),
                        help="; ".join(f"{name}: {what}" for name, what in PROTOCOLS.items()))
    parser.add_argument("--sequence-events", type=int, default=0,
                        help="events kept per user in the night's sequences (sessions.sequence_events; "
                             "default: the config's)")
    parser.add_argument("--ensemble", type=int, default=1,
                        help="also score each SASRec configuration's seeds in consecutive groups of N as one "
                             "model (mean log-softmax); default 1 = no ensemble")
    parser.add_argument("--ensemble-from", nargs="+", metavar="REPORT",
                        help="train nothing: form the --ensemble groups from the runs of these earlier reports "
                             "(same --home and --dataset; e.g. seeds run side by side in several invocations); "
                             "with --ensemble 1, re-score each run's kept model (row <config>_kept)")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    unknown = [name for name in args.configs if name not in CONFIGS]
    if unknown and not args.ensemble_from:
        parser.error(f"unknown --configs {unknown}; known: {', '.join(CONFIGS)}")
    if args.ensemble > 1 and not args.ensemble_from and len(args.seeds) < args.ensemble:
        parser.error(f"--ensemble {args.ensemble} needs at least {args.ensemble} --seeds")
    apply_common_options(parser, args)
    report = run(args)
    save_report(report, args.out or f"bench_results/nightly_models_{args.dataset}.json", markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
