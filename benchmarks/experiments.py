"""Seed-claim experiments: SASRec / BERT4Rec with and without the skip-informed
contrastive loss, identical hyper-parameters, several seeds, mean ± std.

CLI::

    python -m benchmarks.experiments --dataset synthetic_music|ml-100k --seeds 0 1 2 \
        [--epochs N] [--patience P] [--out bench_results/experiments_<dataset>.json] \
        [--home /tmp/encore_experiments] [--variants sasrec sasrec+cl_item ...]

Data through the nightly's own path (``benchmarks.datasets.prepare_night``: lake, Spark
sequences, dbt marts), as of the dataset's last day:

* ``synthetic_music`` — ``encore.ingest.generator`` music sessions (``--n-users``,
  ``--n-items``, ``--n-days``; defaults = the generator's default config),
  **session-based** like the seeds' MSSD setup (``--unit session``: every
  session is its own sequence, 10-20 tracks, skip = skip_level 1/2), or per
  user (``--unit user``).
* ``ml-100k`` — MovieLens-100k (``encore.ingest.public_datasets.ml100k_events``), per
  user, rating <= 2 = negative signal (the ``is_skip`` label).

Protocol (DESIGN "Evaluation protocol"): temporal leave-last-out on positive
targets, full ranking over all items, history excluded; the numbers reported
are the **test** split of the epoch with the best validation NDCG@10. Every run
goes through ``training.train.train_model(..., register=False)`` and is tracked
in MLflow under ``--home`` (a scratch ENCORE_HOME).

Aggregation: mean and sample standard deviation (ddof=1; 0 for a single seed)
over seeds, per variant and metric.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

VARIANTS: dict[str, tuple[str, str]] = {
    "sasrec": ("sasrec", "none"),
    "sasrec+cl_encoder": ("sasrec", "encoder"),
    "sasrec+cl_item": ("sasrec", "item"),
    "bert4rec": ("bert4rec", "none"),
    "bert4rec+cl_item": ("bert4rec", "item"),
}
KS = (1, 5, 10, 20)
TABLE_METRICS = [f"hr@{k}" for k in KS] + [f"ndcg@{k}" for k in KS] + ["skip_mrr"]
DATASETS = ("synthetic_music", "ml-100k")

# the training override of every benchmark measured before the moving average of the weights
# (training.ema_epochs) joined the nightly's defaults, and SASRec's of every one measured before
# the nightly's SASRec dropped attention dropout (training.attention_dropout): they keep those
# benchmarks' README figures reproducible
EMA_OFF = dict(ema_epochs=0.0)
SASREC_ATTENTION_DROPOUT = dict(attention_dropout=0.2)

# the seeds' defaults, shared by every variant (the seeds train without a moving average)
DEFAULT_HPARAMS = dict(
    hidden=128, layers=2, heads=8, dropout=0.2, batch_size=256, lr=1e-3, loss="sampled_softmax", n_sampled=1000,
    cl_weight=0.5, cl_temperature=0.1, **EMA_OFF,
)


# the seeds' architecture, whatever the nightly's defaults: seed 000's prediction layer, and
# SASRec reads item ids only (no skip-flag embedding) and drops attention probabilities
SEED_ARCHITECTURE = {"sasrec": dict(prediction_layer=True, feedback_embedding=False, **SASREC_ATTENTION_DROPOUT),
                     "bert4rec": dict(prediction_layer=True)}


# ---- data ---------------------------------------------------------------------------


def load_sequences(dataset: str, home: str | Path, max_seq_len: int, unit: str = "user",
                   history_len: int | None = None, **data_settings):
    """(config, ``SequenceData``, run date, description) for ``dataset`` through the nightly's
    own data path (``benchmarks.datasets.prepare_night``: lake, Spark, dbt marts) in the
    scratch state dir ``home``; ``data_settings``: the generator's n_users, n_items, n_days.

    ``unit = session``: every session is its own sequence (user_id := session_id before Spark).
    ``history_len``: events kept per user in the snapshot (default one window, ``max_seq_len + 1``);
    longer histories train on all their windows."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from benchmarks.datasets import dataset_events, experiment_config, prepare_night
    from training.data import SequenceData

    data_settings = {k: v for k, v in data_settings.items() if v is not None}
    cfg = experiment_config(home, data={**data_settings, "domain": "music", "source": "synthetic_music"},
                            training={"max_seq_len": max_seq_len, "user_features": False},
                            sessions={"sequence_events": history_len or 0})
    events = dataset_events(cfg, dataset)
    if unit == "session":
        if events.column("session_id").null_count == events.num_rows:
            raise ValueError(f"{dataset} has no session_id; use --unit user")
        events = events.set_column(events.column_names.index("user_id"), "user_id", events.column("session_id"))
    run_date = prepare_night(cfg, events)
    data = SequenceData.load(cfg, run_date)
    skip_share = float(pc.mean(pc.cast(pa.array(data.is_skip), pa.float64())).as_py()) if len(data.is_skip) else 0.0
    info = {
        "dataset": dataset,
        "unit": unit,
        "run_date": run_date.isoformat(),
        "raw_events": events.num_rows,
        "sequences": data.n_users,
        "items": data.n_items,
        "events_in_sequences": int(len(data.items)),
        "negative_share": round(skip_share, 4),
        "events_kept_per_user": history_len or max_seq_len + 1,
    }
    if dataset == "synthetic_music":
        info["generator"] = {k: getattr(cfg.data, k) for k in ("n_users", "n_items", "n_days", "sessions_per_user_day", "seed")}
    return cfg, data, run_date, info


# ---- runs + aggregation -------------------------------------------------------------


def run_grid(
    cfg,
    data,
    dataset: str,
    seeds: Iterable[int],
    variants: Iterable[str] = tuple(VARIANTS),
    run_date: str = "2026-10-30",
    train_fn: Callable | None = None,
    log: Callable[[str], None] = print,
    **overrides,
) -> list[dict]:
    """Train every variant for every seed with identical ``overrides``; one row per run."""
    from training.train import train_model

    train_fn = train_fn or train_model
    runs = []
    for seed in seeds:
        for variant in variants:
            model_name, contrastive = VARIANTS[variant]
            started = time.perf_counter()
            result = train_fn(
                cfg, run_date, model_name, data=data, dataset=dataset, register=False, resume=False,
                contrastive=contrastive, seed=seed, **{**SEED_ARCHITECTURE.get(model_name, {}), **overrides},
            )
            seconds = time.perf_counter() - started
            row = {
                "variant": variant,
                "seed": seed,
                "mlflow_run_id": result["run_id"],
                "best_epoch": result["best_epoch"],
                "stopped_early": result["stopped_early"],
                "seconds": round(seconds, 1),
                "valid": result["valid"],
                "test": result["test"],
            }
            runs.append(row)
            log(
                f"[{dataset}] {variant:18s} seed={seed} best_epoch={row['best_epoch']:3d} "
                f"test ndcg@10={row['test']['ndcg@10']:.4f} hr@10={row['test']['hr@10']:.4f} "
                f"skip_mrr={row['test'].get('skip_mrr', float('nan')):.4f} ({seconds:.0f}s)"
            )
    return runs


def mean_std(values: list[float]) -> dict[str, float]:
    """Mean and sample std (ddof=1; 0.0 for one value) of the finite values."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not finite:
        return {"mean": float("nan"), "std": float("nan"), "n": 0}
    std = float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0
    return {"mean": float(np.mean(finite)), "std": std, "n": len(finite)}


def run_conditions() -> dict:
    """What a benchmark's figures depend on besides its command and data: the code (commit, and
    whether tracked files differ from it), torch, and torch's thread count, which sets the order
    of floating-point sums (one seed of a configuration trained with 1 and with 2 threads can
    differ by as much as two seeds do), as of when the report is written. ``None`` where git
    cannot tell (not a checkout)."""
    import torch

    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], cwd=Path(__file__).resolve().parent, capture_output=True,
                                  text=True, check=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    changes = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD"), "uncommitted_changes": None if changes is None else bool(changes),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "platform": platform.platform(),
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def save_report(report: dict, out: str | Path, table: str) -> Path:
    """Write a benchmark's JSON ``report`` to ``out`` (making its folder) with the
    ``run_conditions`` it ran under, print its markdown ``table`` and where the report went."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**report, "conditions": run_conditions()}, indent=2, default=str))
    print(table)
    print(f"wrote {out}")
    return out


def format_mean_std(cell: dict | None, missing: str = "n/a") -> str:
    """A ``mean_std`` cell as a table shows it: "mean ± std", the mean alone for one run,
    ``missing`` for none."""
    if not cell or not cell["n"]:
        return missing
    return f"{cell['mean']:.4f}" + (f" ± {cell['std']:.4f}" if cell["n"] > 1 else "")


def aggregate(runs: list[dict], split: str = "test") -> dict[str, dict[str, dict[str, float]]]:
    """``{variant: {metric: {mean, std, n}}}`` over seeds (variants in first-seen order)."""
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for variant in dict.fromkeys(r["variant"] for r in runs):
        rows = [r for r in runs if r["variant"] == variant]
        metrics = dict.fromkeys(k for r in rows for k in r[split])
        summary[variant] = {m: mean_std([r[split].get(m, float("nan")) for r in rows]) for m in metrics}
        summary[variant]["best_epoch"] = mean_std([r["best_epoch"] for r in rows])
    return summary


def _rel(a: float, b: float) -> float:
    return (a / b - 1.0) * 100.0 if b else float("nan")


def check_claims(summary: dict) -> dict:
    """The seeds' claims, judged on test means (and whether the gap exceeds the seeds' spread)."""

    def m(variant: str, metric: str) -> tuple[float, float]:
        cell = summary.get(variant, {}).get(metric)
        return (cell["mean"], cell["std"]) if cell else (float("nan"), float("nan"))

    def beats(a: str, b: str, metric: str, lower_is_better: bool = False) -> dict:
        (ma, sa), (mb, sb) = m(a, metric), m(b, metric)
        diff = (mb - ma) if lower_is_better else (ma - mb)
        return {"a": ma, "b": mb, "diff": diff, "rel_pct": _rel(ma, mb), "beyond_std": abs(diff) > max(sa, sb)}

    claims: dict[str, dict] = {}
    # 1. contrastive helps, most at small K (relative HR gain shrinks from K=1 to K=20)
    for cl, base in (("sasrec+cl_item", "sasrec"), ("sasrec+cl_encoder", "sasrec"), ("bert4rec+cl_item", "bert4rec")):
        if cl in summary and base in summary:
            gains = {f"hr@{k}": _rel(m(cl, f"hr@{k}")[0], m(base, f"hr@{k}")[0]) for k in KS}
            skip = beats(cl, base, "skip_mrr", lower_is_better=True)
            claims[f"{cl} vs {base}"] = {
                "hr_rel_gain_pct": gains,
                "helps": all(g > 0 for g in gains.values() if math.isfinite(g)),
                "largest_at_small_k": gains["hr@1"] > gains["hr@20"] > -math.inf and gains["hr@1"] > 0,
                "skip_mrr_lower": skip["diff"] > 0,
                "skip_mrr": skip,
            }
    # 2. unidirectional beats bidirectional at every K
    for uni, bi in (("sasrec", "bert4rec"), ("sasrec+cl_item", "bert4rec+cl_item")):
        if uni in summary and bi in summary:
            per_k = {f"hr@{k}": beats(uni, bi, f"hr@{k}") for k in KS}
            claims[f"{uni} vs {bi}"] = {
                "per_k": per_k,
                "holds": all(v["diff"] > 0 for v in per_k.values()),
                "gap_shrinks_with_k": per_k["hr@1"]["rel_pct"] > per_k["hr@20"]["rel_pct"],
            }
    # 3. item anchor >= encoder anchor
    if "sasrec+cl_item" in summary and "sasrec+cl_encoder" in summary:
        per_metric = {f"{p}@{k}": beats("sasrec+cl_item", "sasrec+cl_encoder", f"{p}@{k}") for p in ("hr", "ndcg") for k in KS}
        claims["item anchor vs encoder anchor"] = {
            "per_metric": per_metric,
            "holds": sum(v["diff"] >= 0 for v in per_metric.values()) >= len(per_metric) / 2,
        }
    return claims


def verdicts(claims: dict) -> list[str]:
    """Plain-language lines: does each seed claim hold here?"""
    lines = []
    for name, c in claims.items():
        if "hr_rel_gain_pct" in c:
            g = c["hr_rel_gain_pct"]
            gains = ", ".join(f"HR@{k} {g[f'hr@{k}']:+.1f}%" for k in KS)
            lines.append(
                f"- {name}: contrastive {'helps at every K' if c['helps'] else 'does NOT help at every K'} ({gains}); "
                f"gain {'is' if c['largest_at_small_k'] else 'is NOT'} largest at small K; "
                f"skip MRR {'lower (better)' if c['skip_mrr_lower'] else 'NOT lower'} "
                f"({c['skip_mrr']['a']:.4f} vs {c['skip_mrr']['b']:.4f})."
            )
        elif "per_k" in c:
            gaps = ", ".join(f"HR@{k} {c['per_k'][f'hr@{k}']['rel_pct']:+.1f}%" for k in KS)
            beyond = sum(v["beyond_std"] for v in c["per_k"].values())
            lines.append(
                f"- {name}: unidirectional {'beats' if c['holds'] else 'does NOT beat'} bidirectional at every K "
                f"({gaps}; {beyond}/4 gaps exceed 1 std); gap {'shrinks' if c['gap_shrinks_with_k'] else 'does NOT shrink'} with K."
            )
        else:
            wins = sum(v["diff"] >= 0 for v in c["per_metric"].values())
            beyond = sum(v["beyond_std"] for v in c["per_metric"].values())
            lines.append(
                f"- {name}: item anchor >= encoder anchor on {wins}/{len(c['per_metric'])} HR/NDCG cells "
                f"({beyond} of the gaps exceed 1 std) -> claim {'holds' if c['holds'] else 'does NOT hold'}."
            )
    return lines


def markdown_table(summary: dict, metrics: list[str] = TABLE_METRICS) -> str:
    header = "| variant | " + " | ".join(("skip MRR ↓" if m == "skip_mrr" else m.upper()) for m in metrics) + " | best epoch |"
    lines = [header, "|" + "---|" * (len(metrics) + 2)]
    for variant, cells in summary.items():
        values = [format_mean_std(cells.get(metric)) for metric in metrics]
        epoch = cells["best_epoch"]
        lines.append(f"| {variant} | " + " | ".join(values) + f" | {epoch['mean']:.1f} |")
    return "\n".join(lines)


def reusable_runs(out: Path, overrides: dict, info: dict, variants: list[str]) -> dict[int, list[dict]]:
    """Finished seeds of an earlier report at ``out`` with the same data and hyper-parameters
    (every requested variant present), so a grid can be extended seed by seed."""
    if not out.exists():
        return {}
    try:
        old = json.loads(out.read_text())
    except json.JSONDecodeError:
        return {}
    if old.get("hyper_parameters") != json.loads(json.dumps(overrides)) or old.get("data") != json.loads(json.dumps(info)):
        return {}
    by_seed: dict[int, list[dict]] = {}
    for run in old.get("runs", []):
        by_seed.setdefault(int(run["seed"]), []).append(run)
    return {
        seed: [r for v in variants for r in rows if r["variant"] == v]
        for seed, rows in by_seed.items()
        if set(variants) <= {r["variant"] for r in rows}
    }


# ---- CLI ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.experiments", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, choices=DATASETS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--max-seq-len", type=int, help="window (default: 20 for sessions, 50 per user)")
    parser.add_argument("--unit", choices=["session", "user"], help="sequence unit (default: session for synthetic)")
    parser.add_argument("--n-users", type=int, help="synthetic generator users (default: config)")
    parser.add_argument("--n-items", type=int, help="synthetic generator items (default: config)")
    parser.add_argument("--n-days", type=int, help="synthetic generator days (default: config)")
    for name, value in DEFAULT_HPARAMS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument("--home", default=os.environ.get("ENCORE_EXPERIMENT_HOME", "/tmp/encore_experiments"),
                        help="scratch ENCORE_HOME (MLflow db, checkpoints, dataset cache)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads")
    parser.add_argument("--out")
    parser.add_argument("--fresh", action="store_true", help="retrain seeds already finished in --out")
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    unit = args.unit or ("session" if args.dataset == "synthetic_music" else "user")
    max_seq_len = args.max_seq_len or (20 if unit == "session" else 50)
    started = time.perf_counter()
    cfg, data, run_date, info = load_sequences(args.dataset, args.home, max_seq_len, unit, n_users=args.n_users,
                                               n_items=args.n_items, n_days=args.n_days)
    print(f"data: {json.dumps(info)} ({time.perf_counter() - started:.1f}s)", flush=True)

    hparams = {name: getattr(args, name) for name in DEFAULT_HPARAMS}
    if hparams["loss"] == "sampled_softmax" and hparams["n_sampled"] >= data.n_items:
        print(f"note: n_sampled={hparams['n_sampled']} >= n_items={data.n_items} (negatives drawn with replacement)")
    overrides = dict(
        hparams, epochs=args.epochs, patience=args.patience, max_seq_len=max_seq_len, device="cpu", progress=False,
    )
    command = "python -m benchmarks.experiments " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    out = Path(args.out or f"bench_results/experiments_{args.dataset}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    previous = reusable_runs(out, overrides, info, args.variants)
    runs: list[dict] = []
    for done, seed in enumerate(args.seeds, start=1):
        if seed in previous and not args.fresh:
            print(f"seed {seed}: reusing its finished runs from {out} (same data and hyper-parameters)", flush=True)
            runs += previous[seed]
            continue
        runs += run_grid(
            cfg, data, args.dataset, [seed], args.variants, run_date,
            log=lambda line: print(line, flush=True), **overrides,
        )
        # written after every seed, so an interrupted grid still leaves its finished seeds
        write_report(out, runs, args, done, command, info, overrides, cfg, started)
    summary, table, lines, total = write_report(out, runs, args, len(args.seeds), command, info, overrides, cfg, started)
    print(f"\n{args.dataset} ({info['unit']}-based, {info['sequences']} sequences, {info['items']} items), "
          f"test split, mean ± std over seeds {args.seeds}:\n")
    print(table)
    print("\nSeed claims here:")
    print("\n".join(lines))
    print(f"\nwall time {total / 60:.1f} min")
    print(f"wrote {out}")
    return 0


def write_report(out: Path, runs: list[dict], args, done: int, command: str, info: dict, overrides: dict, cfg,
                 started: float):
    """Aggregate the runs so far and write the JSON report; (summary, markdown table, verdicts, seconds)."""
    summary = aggregate(runs)
    claims = check_claims(summary)
    table = markdown_table(summary)
    lines = verdicts(claims)
    total = time.perf_counter() - started
    report = {
        "command": command,
        "complete": done == len(args.seeds),
        "conditions": run_conditions(),
        "data": info,
        "protocol": "temporal leave-last-out on positives; test = last positive, valid = the one before; "
                    "full ranking over all items, the whole history excluded; test metrics at best valid NDCG@10",
        "seeds": args.seeds[:done],
        "hyper_parameters": overrides,
        "aggregation": "mean and sample std (ddof=1) over seeds",
        "mlflow_tracking_uri": cfg.paths.mlflow_tracking_uri,
        "runs": runs,
        "summary": summary,
        "claims": claims,
        "verdicts": lines,
        "markdown": table,
        "wall_seconds": round(total, 1),
    }
    out.write_text(json.dumps(report, indent=2, default=str))
    return summary, table, lines, total


if __name__ == "__main__":
    raise SystemExit(main())
