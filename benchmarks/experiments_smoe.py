"""S-MoE-BST ablation (seed 003): BST -> +MoE -> +PHNS (HARD / MEDIUM / EASY) ->
+MTL -> +soft labels, on the PHNS-hard and easy test sets; on request (``--variants``) PHNS HARD
with the sampling-bias correction of its negatives (``training.phns_sampling_correction``).

CLI::

    python -m benchmarks.experiments_smoe [--dataset video|ml-100k] --seeds 0 1 2 [--epochs 10] \
        [--n-users 600] [--n-items 500] [--n-days 30] [--home /tmp/encore_smoe] [--variants bst bst+moe ...]

Data through the nightly's own path (``benchmarks.datasets.prepare_night``: lake, Spark
sequences / PHNS pools and negatives, dbt marts) as of the last day:

* ``video``: ``encore.ingest.generator`` with ``data.domain=video`` (completion <= 0.05 =
  abandoned = hard negative);
* ``ml-100k``: MovieLens-100k with the rating mapped to engagement, completion =
  rating / 5, and rating <= 2 = negative (the hard pool). Its last week is sparse,
  so the trending pool looks back ``ML100K_TRENDING_DAYS`` instead of 7 days.

Every run goes through
``training.train.train_model(..., register=False)``; the numbers are the test
split of the best-validation epoch, the target ranked among the ``eval_candidates``
mart's sets (PHNS-hard: the top ``features.eval_negatives_per_pool`` of each of the
user's hard / trending / tailing pools; easy: uniform unseen items), plus full ranking.
Prints a markdown table, mean ± std (ddof=1) over seeds.
"""

from __future__ import annotations

import argparse

from benchmarks.datasets import experiment_config, prepare_night
from benchmarks.experiments import EMA_OFF, format_mean_std, mean_std

BASE = dict(next_k=1, ctr_weight=0.0, completion_weight=0.0, entropy_weight=0.0, engagement_alpha=0.0)
MTL = dict(ctr_weight=0.5, completion_weight=0.5, entropy_weight=0.01, engagement_alpha=1.0)
VARIANTS: dict[str, dict] = {
    "bst": dict(BASE, experts=("long",), expert_windows=(0,), phns_mix="UNIFORM"),
    "bst+moe": dict(BASE, phns_mix="UNIFORM"),
    "bst+moe+phns_hard": dict(BASE, phns_mix="HARD"),
    "bst+moe+phns_medium": dict(BASE, phns_mix="MEDIUM"),
    "bst+moe+phns_easy": dict(BASE, phns_mix="EASY"),
    "bst+moe+phns_medium+mtl": dict(BASE, phns_mix="MEDIUM", **MTL),
    "bst+moe+phns_medium+mtl+soft": dict(BASE, phns_mix="MEDIUM", **{**MTL, "next_k": 0}),
    # PHNS with the sampling-bias (logQ) correction of its negatives, full and half
    "bst+moe+phns_hard+logq": dict(BASE, phns_mix="HARD", phns_sampling_correction=1.0),
    "bst+moe+phns_hard+logq0.5": dict(BASE, phns_mix="HARD", phns_sampling_correction=0.5),
}
# the ablation's steps; the logQ rows run when asked for (--variants)
DEFAULT_VARIANTS = [name for name in VARIANTS if "logq" not in name]
METRICS = ("ndcg@1", "ndcg@5", "recall@5", "mrr@5")
DATASET_NAMES = {"video": "synthetic_video", "ml-100k": "ml-100k"}


ML100K_TRENDING_DAYS = 30


def ml100k_engagement_events(cfg):
    """MovieLens-100k events with completion = rating / 5 (engagement)."""
    import pyarrow.compute as pc

    from encore.ingest.public_datasets import ml100k_events

    events = ml100k_events()
    completion = pc.divide(pc.cast(events.column("rating"), "float64"), 5.0)
    if "completion" in events.column_names:
        return events.set_column(events.column_names.index("completion"), "completion", completion)
    return events.append_column("completion", completion)


def build_data(args):
    """(config, SequenceData, run_date): the dataset through the nightly's data path."""
    from training.data import SequenceData

    data_settings = {"n_users": args.n_users, "n_items": args.n_items, "n_days": args.n_days}
    if args.dataset == "video":
        cfg = experiment_config(args.home, training={"max_seq_len": args.max_seq_len, "user_features": False},
                                data={**data_settings, "domain": "video", "source": "synthetic_video"})
        from encore.ingest.public_datasets import synthetic_events

        events = synthetic_events(cfg)
    elif args.dataset == "ml-100k":
        cfg = experiment_config(args.home, training={"max_seq_len": args.max_seq_len, "user_features": False},
                                phns={"trending_window_days": ML100K_TRENDING_DAYS})
        events = ml100k_engagement_events(cfg)
    else:
        raise ValueError(f"unknown dataset {args.dataset!r}; known: video, ml-100k")
    run_date = prepare_night(cfg, events)
    return cfg, SequenceData.load(cfg, run_date), run_date


def run(args) -> dict[str, dict[str, list[float]]]:
    from training.train import train_model

    cfg, data, run_date = build_data(args)
    print(f"{args.dataset} data: {data.n_users} users, {data.n_items} items, {len(data.items)} events, run date {run_date}")
    results: dict[str, dict[str, list[float]]] = {}
    for name in args.variants:
        for seed in args.seeds:
            out = train_model(
                cfg, run_date, "smoe_bst", data=data, dataset=DATASET_NAMES[args.dataset], register=False, resume=False,
                epochs=args.epochs, seed=seed, progress=False, hidden=args.hidden, layers=2, heads=4, dropout=0.2,
                max_seq_len=args.max_seq_len, batch_size=128, lr=1e-3, device="cpu", **EMA_OFF, **VARIANTS[name],
            )
            row = results.setdefault(name, {})
            for split in ("phns_hard", "easy"):
                for metric in METRICS:
                    row.setdefault(f"{split}/{metric}", []).append(out[split][metric])
            row.setdefault("test/ndcg@10", []).append(out["test"]["ndcg@10"])
            print(f"{name} seed {seed}: phns_hard ndcg@1 {out['phns_hard']['ndcg@1']:.4f}, "
                  f"easy ndcg@1 {out['easy']['ndcg@1']:.4f}", flush=True)
    return results


def markdown(results: dict[str, dict[str, list[float]]], n_seeds: int) -> str:
    columns = [f"{s}/{m}" for s in ("phns_hard", "easy") for m in METRICS] + ["test/ndcg@10"]
    lines = [f"| variant ({n_seeds} seed(s)) | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, row in results.items():
        cells = [format_mean_std(mean_std(row[column])) for column in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.experiments_smoe", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="video", choices=list(DATASET_NAMES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--n-users", type=int, default=600)
    parser.add_argument("--n-items", type=int, default=500)
    parser.add_argument("--n-days", type=int, default=30)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--max-seq-len", type=int, default=50)
    parser.add_argument("--home", default="/tmp/encore_smoe")
    parser.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS, choices=list(VARIANTS))
    args = parser.parse_args(argv)
    print(markdown(run(args), len(args.seeds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
