"""Baselines, AttRec (and optionally SASRec) with and without negative feedback,
same split and full-ranking metrics, several seeds -> a markdown leaderboard.

CLI::

    python -m benchmarks.leaderboard --dataset synthetic_music|ml-100k --seeds 0 1 2 \
        [--models most_pop most_pop_neg ... attrec attrec_neg sasrec sasrec+cl_item] [--epochs 10] [--out table.md]

Data: ``synthetic_music`` = the generator's dataset for the config; ``ml-100k`` =
MovieLens-100k (rating <= 2 = negative signal), both turned into sequences by
``benchmarks.duckdb_reference`` (test = last positive per user, valid = the one
before). Every run is logged to the MLflow experiment of the sequence models
(with MODEL_RUN rows, not registered); the table is logged as an artifact of a
``leaderboard-<dataset>`` run. Numbers are test-split means ± std over seeds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import statistics
import sys
import tempfile
from pathlib import Path

from encore.core.config import EncoreConfig, load_config
from training.baselines import BASELINES, fit_baseline
from training.data import SequenceData

DEFAULT_MODELS = [*BASELINES, "attrec", "attrec_neg"]
COLUMNS = ("hr@10", "ndcg@10", "mrr@10", "skip_mrr")


def load_dataset(cfg: EncoreConfig, dataset: str) -> SequenceData:
    from benchmarks.duckdb_reference import build_sequences_duckdb
    from encore.ingest.public_datasets import ml100k_events, synthetic_events

    if dataset == "ml-100k":
        events = ml100k_events()
    elif dataset == "synthetic_music":
        events = synthetic_events(cfg)
    else:
        raise ValueError(f"unknown dataset {dataset!r}; known: synthetic_music, ml-100k")
    return SequenceData.from_arrow(build_sequences_duckdb(events, cfg).sort_by("user_id"))


def run_one(cfg: EncoreConfig, run_date: str, spec: str, data: SequenceData, dataset: str, seed: int, epochs: int) -> dict:
    """Test metrics of one model spec (``wrmf_neg``, ``attrec``, ``sasrec+cl_item`` ...)."""
    from training.train import train_model

    if spec in BASELINES:
        result = fit_baseline(cfg, run_date, spec, data=data, dataset=dataset, register=False, seed=seed)
    else:
        model, _, contrastive = spec.partition("+cl_")
        result = train_model(
            cfg, run_date, model, data=data, dataset=dataset, register=False, resume=False, seed=seed,
            epochs=epochs, contrastive=contrastive or "none", progress=False,
        )
    return result["test"]


def markdown_table(results: dict[str, list[dict]], columns: tuple[str, ...] = COLUMNS) -> str:
    def cell(values: list[float]) -> str:
        values = [v for v in values if not math.isnan(v)]
        if not values:
            return "–"
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.fmean(values):.4f} ± {std:.4f}"

    lines = ["| model | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for spec, runs in results.items():
        lines.append(f"| {spec} | " + " | ".join(cell([r.get(c, float("nan")) for r in runs]) for c in columns) + " |")
    return "\n".join(lines)


def leaderboard(cfg: EncoreConfig, dataset: str, seeds: list[int], models: list[str], epochs: int, run_date: str) -> str:
    import mlflow

    from training import tracking

    data = load_dataset(cfg, dataset)
    print(f"{dataset}: {data.n_users} users, {data.n_items} items, {len(data.items)} events", file=sys.stderr)
    results: dict[str, list[dict]] = {spec: [] for spec in models}
    for seed in seeds:
        for spec in models:
            results[spec].append(run_one(cfg, run_date, spec, data, dataset, seed, epochs))
            print(f"seed {seed} {spec}: " + ", ".join(f"{c} {results[spec][-1].get(c, float('nan')):.4f}" for c in COLUMNS),
                  file=sys.stderr)
    header = (f"Leaderboard {dataset} ({data.n_users} users, {data.n_items} items): test split (last positive per user), "
              f"full ranking, history excluded, mean ± std over seeds {seeds}; skip_mrr lower is better.\n\n")
    table = header + markdown_table(results)
    with tracking.start_run(cfg, f"leaderboard-{dataset}", tags={"dataset": dataset, "run_date": run_date}):
        mlflow.log_params({"dataset": dataset, "seeds": " ".join(map(str, seeds)), "models": " ".join(models), "epochs": epochs})
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"leaderboard_{dataset}.md"
            path.write_text(table + "\n")
            mlflow.log_artifact(str(path))
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.leaderboard", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, choices=["synthetic_music", "ml-100k"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--epochs", type=int, default=10, help="epochs of the trained models (AttRec, SASRec)")
    parser.add_argument("--run-date", default=dt.date.today().isoformat(), help="date the MODEL_RUN rows are filed under")
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args(argv)
    table = leaderboard(load_config(), args.dataset, args.seeds, args.models, args.epochs, args.run_date)
    if args.out:
        Path(args.out).write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
