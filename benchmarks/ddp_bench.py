"""Data-parallel SASRec training (torchrun, gloo) against one process, on CPU: epoch time and validation NDCG@10.

``python -m benchmarks.ddp_bench --world-sizes 1 2 --epochs 5 --out bench_results/ddp.json``

Builds the default nightly's training data (the generator's music dataset, ``--n-users``
users over ``--n-days`` days, through the lake, the Spark jobs and the dbt marts), writes the
marts training reads to Parquet, then trains SASRec (+ item-anchor InfoNCE, sampled softmax: the nightly's
settings) on it once per world size with ``torchrun --standalone --nproc_per_node=W``, the
same total batch (``--batch-size``) and ``--threads`` torch threads split over the processes,
one run after the other. Rank 0 reports each epoch's wall time (training + its validation
pass), validation NDCG@10, and the test metrics of the best epoch. Prints a markdown table,
writes JSON.

``train_on_ranks`` is also what ``tests/test_training_distributed.py`` runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.experiments import save_report

log = logging.getLogger("benchmarks.ddp_bench")

MODEL = dict(hidden=128, layers=2, heads=8, dropout=0.2)


def train_on_ranks(sequences: Path, examples: Path, world_size: int, settings: dict, threads: int, result: Path,
                   runs: list[dict] | None = None, model: dict | None = None) -> list[dict]:
    """Train SASRec on the ``fct_user_sequences`` rows at ``sequences`` and the
    ``fct_training_examples`` rows at ``examples`` (Parquet files) under one torchrun launch of
    ``world_size`` processes with ``threads`` torch threads each; per run, rank 0's history,
    best validation and test metrics. ``settings``: ``TrainSettings`` fields (``batch_size`` is
    the total over the processes). ``runs``: trainings one after the other in the same
    processes, each a dict with optional ``settings`` and ``model`` that differ from the shared
    ones and an optional ``checkpoint_dir`` (a run resumes from the checkpoint there, as a new
    process would: fresh model and optimizer, weights, optimizer and RNG state from the file);
    default one run."""
    spec = {"sequences": str(sequences), "examples": str(examples), "settings": settings, "model": model or MODEL, "threads": threads,
            "result": str(result), "runs": runs or [{}]}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={world_size}",
               "-m", "benchmarks.ddp_bench", "--worker", json.dumps(spec)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run(command, env=env, check=True)
    return json.loads(result.read_text())


def worker(spec: dict) -> None:
    """One rank (under torchrun): train each run, and on rank 0 write their results."""
    import pyarrow.parquet as pq
    import torch

    from training import distributed
    from training.data import SequenceData
    from training.models import build_model
    from training.trainer import Trainer, TrainSettings, seed_everything

    torch.set_num_threads(spec["threads"])
    distributed.init_from_env("cpu")
    data = SequenceData.from_arrow(pq.read_table(spec["sequences"]).sort_by("user_id"), pq.read_table(spec["examples"]))
    reports = []
    for run in spec["runs"]:
        settings = TrainSettings(**{**spec["settings"], **run.get("settings", {}), "device": "cpu", "progress": False})
        seed_everything(settings.seed)
        model = build_model("sasrec", data.n_items, max_seq_len=settings.max_seq_len,
                            **{**spec["model"], **run.get("model", {})})
        trainer = Trainer(model, data, settings, checkpoint_dir=run.get("checkpoint_dir"))
        fitted = trainer.fit(resume=True)
        if distributed.is_main():
            reports.append({"world_size": distributed.world_size(), "threads_per_process": spec["threads"],
                            "train_windows": len(trainer.train_split), "history": fitted.history,
                            "best_epoch": fitted.best_epoch, "best_valid": fitted.best_valid,
                            "test": trainer.evaluate("test")})
    if distributed.is_main():
        Path(spec["result"]).write_text(json.dumps(reports))


def bench_marts(directory: Path, n_users: int, n_days: int, max_seq_len: int) -> tuple[Path, Path, dict]:
    """The generator's music dataset through the nightly's data path (lake, Spark jobs, dbt marts),
    its ``fct_user_sequences`` and ``fct_training_examples`` rows written to two Parquet files."""
    import pyarrow.parquet as pq

    from benchmarks.datasets import experiment_config, prepared
    from encore.core.warehouse import query
    from training.data import EXAMPLE_COLUMNS, SEQUENCE_COLUMNS

    # up to 10 windows of history per user, all of them trained on
    cfg = experiment_config(directory / "state", data={"n_users": n_users, "n_days": n_days},
                            sessions={"sequence_events": 10 * max_seq_len + 1},
                            training={"max_seq_len": max_seq_len})
    run_date = prepared(cfg, "synthetic_music")
    paths = directory / "sequences.parquet", directory / "examples.parquet"
    for path, table, columns in zip(paths, ("fct_user_sequences", "fct_training_examples"),
                                    (SEQUENCE_COLUMNS, EXAMPLE_COLUMNS)):
        pq.write_table(query(cfg, f"SELECT {', '.join(columns)} FROM {table} WHERE run_date = ?", [run_date]), path)
    sequences = pq.read_metadata(paths[0]).num_rows
    return paths[0], paths[1], {"run_date": run_date.isoformat(), "users": sequences}


def summarize(run: dict) -> dict:
    epochs = [row["epoch_seconds"] for row in run["history"]]
    median = statistics.median(epochs)
    return {
        "world_size": run["world_size"],
        "threads_per_process": run["threads_per_process"],
        "epochs": len(epochs),
        "epoch_seconds_median": round(median, 2),
        "windows_per_second": round(run["train_windows"] / median),
        "valid_ndcg10_by_epoch": [round(row["valid_ndcg@10"], 4) for row in run["history"]],
        "best_epoch": run["best_epoch"],
        "best_valid_ndcg10": round(run["best_valid"]["ndcg@10"], 4),
        "test_ndcg10": round(run["test"]["ndcg@10"], 4),
    }


def markdown(rows: list[dict]) -> str:
    base = rows[0]["epoch_seconds_median"]
    lines = ["| processes x threads | epoch s (median, incl. validation) | windows/s | speed-up | "
             "valid NDCG@10 by epoch | best epoch | best valid NDCG@10 | test NDCG@10 |",
             "|---|---:|---:|---:|---|---:|---:|---:|"]
    lines += [f"| {r['world_size']} x {r['threads_per_process']} | {r['epoch_seconds_median']} | "
              f"{r['windows_per_second']:,} | {base / r['epoch_seconds_median']:.2f}x | "
              f"{', '.join(f'{v:.4f}' for v in r['valid_ndcg10_by_epoch'])} | {r['best_epoch']} | "
              f"{r['best_valid_ndcg10']:.4f} | {r['test_ndcg10']:.4f} |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world-sizes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="torch threads in all, split evenly over a run's processes")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64, help="windows per step over all processes")
    parser.add_argument("--n-users", type=int, default=1500)
    parser.add_argument("--n-days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", default="bench_results/ddp.json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:  # one rank under torchrun
        worker(json.loads(args.worker))
        return
    settings = {"epochs": args.epochs, "batch_size": args.batch_size, "max_seq_len": 50, "loss": "sampled_softmax",
                "contrastive": "item", "patience": args.epochs, "seed": args.seed}
    rows = []
    with tempfile.TemporaryDirectory(prefix="encore-ddp-bench-") as scratch:
        sequences, examples, data = bench_marts(Path(scratch), args.n_users, args.n_days, settings["max_seq_len"])
        log.info("data: %s", data)
        for world_size in args.world_sizes:
            threads = max(1, args.threads // world_size)
            log.info("training on %d process(es) x %d thread(s)", world_size, threads)
            (run,) = train_on_ranks(sequences, examples, world_size, settings, threads, Path(scratch) / f"result-{world_size}.json")
            rows.append(summarize(run))
            log.info("%s", rows[-1])
    save_report({"data": data, "settings": settings, "runs": rows, "cpu_count": os.cpu_count()}, args.out,
                markdown(rows))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    main()
