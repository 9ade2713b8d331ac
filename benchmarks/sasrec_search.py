"""Optuna search of SASRec's settings on one night's marts, with pruning and a fixed trial budget.

CLI::

    python -m benchmarks.sasrec_search --dataset ml-100k --protocol recbole --sequence-events 1000 \\
        --trials 12 --timeout-minutes 80 --epochs 40 --seed 0 --threads 1 \\
        --storage sqlite:///bench_results/sasrec_search.db --study ml-100k-recbole [--home /tmp/nm]

The data is what ``benchmarks.nightly_models`` trains on (same ``--home`` layout, so a prepared
state dir is reused). Each trial trains SASRec with the sampled settings on top of the nightly's
defaults; the objective is the **validation** NDCG@10 of the best epoch (the number the nightly
selects on), and every epoch's validation NDCG@10 is reported to a median pruner, which stops a
trial that is below the median of earlier trials at the same epoch. Several processes may work on
one study through ``--storage`` (each runs ``--trials`` trials or stops at ``--timeout-minutes``).
Test NDCG@10 is stored with each trial as a user attribute, never used to choose. Prints the
trials and the best one and writes the JSON report. Needs ``optuna`` (``make bench-search``
installs it; it is not a runtime dependency).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchmarks.experiments import EMA_OFF, SASREC_ATTENTION_DROPOUT, save_report
from benchmarks.nightly_models import PROTOCOLS, apply_common_options, prepare_data

# the searched settings (overrides of the config's training section) and their ranges
SPACE_DOC = {
    "lr": "log-uniform 3e-4 .. 3e-3",
    "batch_size": "8 | 16 | 32 | 64 windows per step",
    "dropout": "0.1 .. 0.5 (step 0.1)",
    "weight_decay": "0 | 0.01 | 0.1",
    "hidden": "64 | 128 | 256",
    "layers": "1 | 2 | 3",
    "heads": "2 | 4 | 8",
    "max_seq_len": "50 | 100 | 200",
    "lr_schedule": "constant | cosine",
}


def sample_settings(trial) -> dict:
    return {
        "lr": trial.suggest_float("lr", 3e-4, 3e-3, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [8, 16, 32, 64]),
        "dropout": trial.suggest_float("dropout", 0.1, 0.5, step=0.1),
        "weight_decay": trial.suggest_categorical("weight_decay", [0.0, 0.01, 0.1]),
        "hidden": trial.suggest_categorical("hidden", [64, 128, 256]),
        "layers": trial.suggest_int("layers", 1, 3),
        "heads": trial.suggest_categorical("heads", [2, 4, 8]),
        "max_seq_len": trial.suggest_categorical("max_seq_len", [50, 100, 200]),
        "lr_schedule": trial.suggest_categorical("lr_schedule", ["constant", "cosine"]),
    }


def run(args) -> dict:
    import optuna

    from training.train import train_model

    cfg, run_date, data = prepare_data(args.dataset, args.protocol, args.sequence_events, args.home)

    def objective(trial) -> float:
        settings = sample_settings(trial)

        def report(epoch: int, row: dict[str, float]) -> None:
            trial.report(row["valid_ndcg@10"], epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"epoch {epoch}: valid ndcg@10 {row['valid_ndcg@10']:.4f}")

        began = time.perf_counter()
        out = train_model(cfg, run_date, "sasrec", data=data, dataset=f"search-{args.study}-{trial.number}",
                          register=False, resume=False, seed=args.seed, epochs=args.epochs, progress=False,
                          on_epoch_end=report, **EMA_OFF, **SASREC_ATTENTION_DROPOUT, **settings)
        trial.set_user_attr("test_ndcg@10", out["test"]["ndcg@10"])
        trial.set_user_attr("best_epoch", out["best_epoch"])
        trial.set_user_attr("seconds", round(time.perf_counter() - began, 1))
        print(f"trial {trial.number}: valid {out['valid']['ndcg@10']:.4f} test {out['test']['ndcg@10']:.4f} "
              f"{settings}", flush=True)
        return out["valid"]["ndcg@10"]

    study = optuna.create_study(
        study_name=args.study, storage=args.storage, load_if_exists=True, direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=args.sampler_seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=4),
    )
    study.optimize(objective, n_trials=args.trials, timeout=args.timeout_minutes * 60 if args.timeout_minutes else None)
    trials = [
        {"number": t.number, "state": t.state.name, "valid_ndcg@10": t.value, "params": t.params,
         "last_epoch": max(t.intermediate_values, default=None), **t.user_attrs}
        for t in study.trials
    ]
    complete = [t for t in trials if t["state"] == "COMPLETE"]
    best = max(complete, key=lambda t: t["valid_ndcg@10"]) if complete else None
    return {"dataset": args.dataset, "protocol": args.protocol, "sequence_events": args.sequence_events,
            "study": args.study, "seed": args.seed, "epochs": args.epochs, "space": SPACE_DOC,
            "trials": trials, "best": best}


def markdown(report: dict) -> str:
    lines = ["| trial | state | valid NDCG@10 | test NDCG@10 | epochs | settings |", "|---:|---|---:|---:|---:|---|"]
    for t in sorted(report["trials"], key=lambda t: -(t["valid_ndcg@10"] or -1)):
        valid = f"{t['valid_ndcg@10']:.4f}" if t["valid_ndcg@10"] is not None else "-"
        test = f"{t['test_ndcg@10']:.4f}" if "test_ndcg@10" in t else "-"
        lines.append(f"| {t['number']} | {t['state'].lower()} | {valid} | {test} | {t['last_epoch']} | {t['params']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sasrec_search", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="ml-100k", choices=["synthetic_music", "ml-100k"])
    parser.add_argument("--protocol", default="recbole", choices=list(PROTOCOLS))
    parser.add_argument("--sequence-events", type=int, default=1000)
    parser.add_argument("--trials", type=int, default=12, help="trials this process runs (the budget)")
    parser.add_argument("--timeout-minutes", type=float, default=0, help="stop starting trials after this (0 = none)")
    parser.add_argument("--epochs", type=int, default=40, help="max epochs per trial (early stopping still applies)")
    parser.add_argument("--seed", type=int, default=0, help="training seed of every trial")
    parser.add_argument("--sampler-seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--storage", default="sqlite:///bench_results/sasrec_search.db")
    parser.add_argument("--study", default="ml-100k-recbole")
    parser.add_argument("--home", default="/tmp/encore_nightly_models")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    apply_common_options(parser, args)
    Path("bench_results").mkdir(exist_ok=True)  # the default --storage lives there
    report = run(args)
    save_report(report, args.out or f"bench_results/sasrec_search_{args.study}.json", markdown(report))
    print(f"best: {report['best']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
