"""Where a SASRec training epoch's time goes, per configuration, on a night's marts.

CLI::

    python -m benchmarks.epoch_profile --dataset synthetic_music|ml-100k \\
        [--configs sasrec sasrec_attention_dropout] [--epochs 2] [--top 8] [--threads N] \\
        [--home /tmp/encore_nightly_models] [--out bench_results/epoch_profile_<dataset>.json]

The data is ``benchmarks.nightly_models``' (the nightly's own path, prepared once per ``--home``)
and each configuration one of its ``CONFIGS``. Per configuration, in one process one after the
other: ``--epochs`` training epochs timed as the nightly runs them (no validation), then one more
under ``torch.profiler``, whose top operators by self CPU time are reported as shares of that
epoch. The profiler adds overhead, so the shares are the profile's; the seconds are the timed epochs'.
"""

from __future__ import annotations

import argparse
import time

from benchmarks.experiments import save_report
from benchmarks.nightly_models import CONFIGS, prepare_data


def profile_configuration(cfg, run_date, data, name: str, epochs: int, top: int) -> dict:
    """Seconds of ``epochs`` timed epochs of configuration ``name`` and the ``top`` operators of one profiled epoch."""
    from torch.profiler import ProfilerActivity, profile

    from training.specs import model_spec
    from training.trainer import Trainer

    spec = model_spec("sasrec")
    settings, model_values, _ = spec.settings(cfg, {**CONFIGS[name], "progress": False})
    model, _ = spec.build_model(cfg, run_date, data, settings, model_values)
    trainer = Trainer(model, data, settings)
    seconds = []
    for epoch in range(1, epochs + 1):
        began = time.perf_counter()
        trainer.train_epoch(epoch)
        seconds.append(round(time.perf_counter() - began, 2))
        print(f"{name}: epoch {epoch} {seconds[-1]:.2f} s", flush=True)
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        trainer.train_epoch(epochs + 1)
    events = sorted(profiler.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    operators = [{"operator": e.key, "calls": e.count, "self_seconds": round(e.self_cpu_time_total / 1e6, 3),
                  "share": round(e.self_cpu_time_total / total, 4)} for e in events[:top]]
    return {"settings": CONFIGS[name], "train_windows": len(trainer.train_split),
            "steps_per_epoch": -(-len(trainer.train_split) // settings.batch_size),
            "epoch_seconds": seconds, "profiled_epoch_seconds": round(total / 1e6, 2), "top_operators": operators}


def markdown(report: dict) -> str:
    lines = []
    for name, row in report["configs"].items():
        lines += [f"**{name}** ({row['steps_per_epoch']} steps per epoch): timed epochs "
                  f"{', '.join(f'{s:.2f}' for s in row['epoch_seconds'])} s; profiled epoch "
                  f"{row['profiled_epoch_seconds']:.2f} s of operator time", "",
                  "| operator | calls | self s | share |", "|---|---:|---:|---:|"]
        lines += [f"| {o['operator']} | {o['calls']} | {o['self_seconds']:.3f} | {100 * o['share']:.1f} % |"
                  for o in row["top_operators"]]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=["synthetic_music", "ml-100k"], default="synthetic_music")
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=["sasrec", "sasrec_attention_dropout"])
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per configuration (>= 1)")
    parser.add_argument("--top", type=int, default=8, help="operators listed per configuration")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--home", default="/tmp/encore_nightly_models")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be >= 1")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg, run_date, data = prepare_data(args.dataset, "nightly", 0, args.home)
    report = {"dataset": args.dataset, "run_date": run_date.isoformat(), "threads": torch.get_num_threads(),
              "configs": {name: profile_configuration(cfg, run_date, data, name, args.epochs, args.top) for name in args.configs}}
    save_report(report, args.out or f"bench_results/epoch_profile_{args.dataset}.json", markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
