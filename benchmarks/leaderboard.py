"""Baselines, AttRec (and optionally SASRec) with and without negative feedback,
same split and full-ranking metrics, several seeds -> a markdown leaderboard.

CLI::

    python -m benchmarks.leaderboard --dataset synthetic_music|ml-100k --seeds 0 1 2 \
        [--models most_pop most_pop_neg ... attrec attrec_neg sasrec sasrec+cl_item] [--epochs 10] [--out table.md]

Data: ``synthetic_music`` = the generator's dataset; ``ml-100k`` = MovieLens-100k (rating
<= 2 = negative signal), both through the nightly's own data path
(``benchmarks.datasets.prepare_night``: lake, Spark, dbt marts; test = last positive per
user, valid = the one before) in the scratch state dir ``--home``. Every run goes through
``training.train.train_model`` (tracked, with MODEL_RUN rows, not registered); the table is
logged as an artifact of a ``leaderboard-<dataset>`` run. Numbers are test-split means ±
std over seeds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
from pathlib import Path

from benchmarks.datasets import experiment_config, prepared
from benchmarks.experiments import EMA_OFF, SASREC_ATTENTION_DROPOUT, format_mean_std, mean_std
from encore.core.config import EncoreConfig
from training.baselines import BASELINES
from training.data import SequenceData

DEFAULT_MODELS = [*BASELINES, "attrec", "attrec_neg"]
COLUMNS = ("hr@10", "ndcg@10", "mrr@10", "skip_mrr")


def run_one(cfg: EncoreConfig, run_date: dt.date, spec: str, data: SequenceData, dataset: str, seed: int,
            epochs: int) -> dict:
    """Test metrics of one model spec (``wrmf_neg``, ``attrec``, ``sasrec+cl_item`` ...)."""
    from training.train import train_model

    model, _, contrastive = spec.partition("+cl_")
    settings = {} if model in BASELINES else {"epochs": epochs, "progress": False, "contrastive": contrastive or "none",
                                              **EMA_OFF, **(SASREC_ATTENTION_DROPOUT if model == "sasrec" else {})}
    if model.startswith("attrec"):
        settings.pop("contrastive")
    result = train_model(cfg, run_date, model, data=data, dataset=dataset, register=False, resume=False, seed=seed,
                         **settings)
    return result["test"]


def markdown_table(results: dict[str, list[dict]], columns: tuple[str, ...] = COLUMNS) -> str:
    def cell(values: list[float]) -> str:
        return format_mean_std(mean_std(values), missing="–")

    lines = ["| model | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for spec, runs in results.items():
        lines.append(f"| {spec} | " + " | ".join(cell([r.get(c, float("nan")) for r in runs]) for c in columns) + " |")
    return "\n".join(lines)


def leaderboard(cfg: EncoreConfig, dataset: str, seeds: list[int], models: list[str], epochs: int) -> str:
    import mlflow

    from training import tracking

    run_date = prepared(cfg, dataset)
    data = SequenceData.load(cfg, run_date)
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
    with tracking.start_run(cfg, f"leaderboard-{dataset}", tags={"dataset": dataset, "run_date": run_date.isoformat()}):
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
    parser.add_argument("--home", default="/tmp/encore_leaderboard", help="scratch state dir (lake, warehouse, MLflow)")
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args(argv)
    cfg = experiment_config(Path(args.home) / args.dataset, training={"user_features": False})
    table = leaderboard(cfg, args.dataset, args.seeds, args.models, args.epochs)
    if args.out:
        Path(args.out).write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
