"""Can one SASRec learn what a seed ensemble knows? Knowledge distillation from trained seeds.

CLI::

    python -m benchmarks.ensemble_distillation --dataset ml-100k --protocol recbole --sequence-events 1000 \\
        --teacher-from bench_results/b16_ens_*.json --teacher-seeds 10 11 12 13 14 --seeds 0 1 2 \\
        [--config sasrec_batch16] [--alpha 0.9] [--temperature 2] [--epochs 40] [--threads 1] \\
        [--home /tmp/nm] [--out bench_results/ensemble_distillation.json]

The teacher is the ``SeedEnsemble`` of ``--teacher-seeds``' runs of ``--config`` in earlier
``benchmarks.nightly_models`` reports (same ``--home``, so the same prepared marts and MLflow
store): the mean of its members' log-softmax scores. Each student is one SASRec of the same
configuration, trained from its seed as ``train_model`` trains it except for the loss: at every
position with a target, ``(1 - alpha)`` x full-softmax cross-entropy against the next item +
``alpha`` x ``T^2`` x KL(teacher || student), both distributions at temperature ``T`` (Hinton et
al. 2015), plus the configuration's skip-informed InfoNCE term as usual. Rows: the teacher, the
students, and the same seeds without a teacher where the reports hold them (a paired
comparison). Test split at the best validation epoch; prints a markdown table, writes the JSON.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks.experiments import format_mean_std, mean_std, save_report
from benchmarks.nightly_models import (CONFIGS, PROTOCOLS, apply_common_options, earlier_runs, ensemble_metrics,
                                       ensemble_of_runs, prepare_data)
from training.data import PAD_ID, SequenceBatch
from training.losses import skip_infonce_loss

COLUMNS = ("ndcg@10", "hr@10", "mrr@10")


def next_item_logits(model: torch.nn.Module, inputs: torch.Tensor, batch: SequenceBatch,
                     has_target: torch.Tensor) -> torch.Tensor:
    """``[N, n_items]`` next-item scores of ``model`` at the N positions with a target (column c =
    item id c + 1): what ``full_softmax_loss`` scores."""
    table = model.item_embeddings().float()
    vectors = model.predict_vectors(model.encode(inputs, batch)[has_target]).float()
    return vectors @ table[1 : table.shape[0] - 1].T


def distillation_loss(student_logits: torch.Tensor, teacher_log_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T^2`` x mean over rows of KL(teacher_T || student_T), each distribution the softmax of
    its log-scores / T (the ``T^2`` keeps the gradient's scale as T changes; Hinton et al. 2015)."""
    teacher = (teacher_log_probs / temperature).softmax(-1)
    student = (student_logits / temperature).log_softmax(-1)
    return F.kl_div(student, teacher, reduction="batchmean") * temperature ** 2


class EnsembleDistillation:
    """A ``TrainingObjective``: next-item NLL and distillation from ``teachers`` (frozen models
    scored as a ``SeedEnsemble`` is: the mean of their log-softmax), plus the settings' InfoNCE."""

    def __init__(self, teachers: list[torch.nn.Module], settings, alpha: float, temperature: float):
        loss = settings.loss_settings()
        if loss.loss != "full_softmax" or loss.train_target not in ("next_positive", "next_item") \
                or loss.contrastive not in ("none", "item") or loss.label_smoothing or loss.exclude_seen:
            raise ValueError("distillation is defined here for full_softmax, one next target per position, "
                             "and the item-anchor InfoNCE (or none)")
        if not 0 <= alpha <= 1 or temperature <= 0:
            raise ValueError("alpha must be in [0, 1] and temperature > 0")
        self.teachers = teachers
        for teacher in teachers:
            teacher.eval()
            teacher.requires_grad_(False)
        self.loss, self.alpha, self.temperature = loss, alpha, temperature
        self.params = {"distill_alpha": alpha, "distill_temperature": temperature, "teachers": len(teachers)}

    def start_epoch(self, epoch: int) -> None:
        pass

    def epoch_metrics(self) -> dict[str, float]:
        return {}

    def __call__(self, model: torch.nn.Module, batch: SequenceBatch) -> dict[str, torch.Tensor]:
        inputs, targets = model.training_inputs(batch)
        has_target = targets != PAD_ID
        logits = next_item_logits(model, inputs, batch, has_target)
        nll = F.cross_entropy(logits, targets[has_target] - 1)  # full_softmax_loss without its options
        with torch.no_grad():
            teacher = torch.stack([next_item_logits(t, inputs, batch, has_target).log_softmax(-1)
                                   for t in self.teachers]).mean(0)
        kd = distillation_loss(logits, teacher, self.temperature)
        if self.loss.contrastive == "item":
            table = model.item_embeddings().float()
            cl = skip_infonce_loss(table[batch.seq], batch.next_pos, batch.skip_negatives, table, self.loss.cl_temperature)
        else:
            cl = torch.zeros((), device=nll.device)
        total = (1 - self.alpha) * nll + self.alpha * kd + self.loss.cl_weight * cl
        return {"loss": total, "nll": nll, "kd": kd, "cl_loss": cl}


def train_student(cfg, run_date, data, config_name: str, teachers: list[torch.nn.Module], seed: int,
                  alpha: float, temperature: float, epochs: int | None, checkpoints: Path) -> dict:
    """One student of ``config_name`` from ``seed``: its valid/test metrics, best epoch and seconds."""
    from training.specs import model_spec
    from training.trainer import Trainer

    spec = model_spec("sasrec")
    overrides = {**CONFIGS[config_name], "seed": seed, "progress": False} | ({"epochs": epochs} if epochs else {})
    settings, model_values, _ = spec.settings(cfg, overrides)
    model, _ = spec.build_model(cfg, run_date, data, settings, model_values)
    objective = EnsembleDistillation(teachers, settings, alpha, temperature)
    trainer = Trainer(model, data, settings, checkpoint_dir=checkpoints / f"seed{seed}", objective=objective,
                      on_epoch_end=lambda epoch, row: print(f"  seed {seed} epoch {epoch}: kd {row['kd']:.4f} "
                                                            f"valid ndcg@10 {row['valid_ndcg@10']:.4f}", flush=True))
    began = time.perf_counter()
    result = trainer.fit(resume=False)
    return {"seed": seed, "best_epoch": result.best_epoch, "seconds": round(time.perf_counter() - began, 1),
            "valid": result.best_valid, "test": trainer.evaluate("test")}


def run(args) -> dict:
    cfg, run_date, data = prepare_data(args.dataset, args.protocol, args.sequence_events, args.home)
    _, runs = earlier_runs(args.teacher_from, [args.config])
    by_seed = {r["seed"]: r for r in runs[args.config]}
    missing = sorted(set(args.teacher_seeds) - set(by_seed))
    if missing:
        raise SystemExit(f"no {args.config} runs of teacher seeds {missing} in {args.teacher_from}")
    ensemble = ensemble_of_runs(cfg, data.n_items, [by_seed[s] for s in args.teacher_seeds])
    teachers = list(ensemble.members)
    teacher_row = {"seeds": args.teacher_seeds, **ensemble_metrics(cfg, data, ensemble)}
    print(f"teacher (seeds {args.teacher_seeds}): test ndcg@10 {teacher_row['test']['ndcg@10']:.4f}", flush=True)
    tag = f"a{args.alpha:g}_t{args.temperature:g}_teachers{'-'.join(map(str, args.teacher_seeds))}"
    checkpoints = Path(cfg.paths.checkpoints) / f"distill-{args.config}" / tag
    students = []
    for seed in args.seeds:
        row = train_student(cfg, run_date, data, args.config, teachers, seed, args.alpha, args.temperature,
                            args.epochs, checkpoints)
        students.append(row)
        print(f"student seed {seed}: test ndcg@10 {row['test']['ndcg@10']:.4f} (valid {row['valid']['ndcg@10']:.4f}, "
              f"best epoch {row['best_epoch']}, {row['seconds']:.0f} s)", flush=True)
    rows = {f"{args.config}_ensemble{len(teachers)} (teacher)": [teacher_row],
            f"{args.config}_distilled (alpha {args.alpha:g}, T {args.temperature:g})": students}
    same_seeds = [by_seed[s] for s in args.seeds if s in by_seed]
    if same_seeds:
        rows[f"{args.config}, same seeds, no teacher"] = same_seeds
    summary = {name: {c: mean_std([r["test"][c] for r in group]) for c in COLUMNS} for name, group in rows.items()}
    return {"dataset": args.dataset, "protocol": args.protocol, "config": args.config, "alpha": args.alpha,
            "temperature": args.temperature, "teacher_seeds": args.teacher_seeds, "seeds": args.seeds,
            "runs": rows, "summary": summary}


def markdown(report: dict) -> str:
    lines = ["| model | n | " + " | ".join(f"test {c}" for c in COLUMNS) + " |", "|---|" + "---:|" * (len(COLUMNS) + 1)]
    for name, cells in report["summary"].items():
        lines.append(f"| {name} | {cells[COLUMNS[0]]['n']} | " + " | ".join(format_mean_std(cells[c]) for c in COLUMNS) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ensemble_distillation",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="ml-100k", choices=["synthetic_music", "ml-100k"])
    parser.add_argument("--protocol", default="recbole", choices=list(PROTOCOLS))
    parser.add_argument("--sequence-events", type=int, default=1000)
    parser.add_argument("--config", default="sasrec_batch16", choices=list(CONFIGS))
    parser.add_argument("--teacher-from", nargs="+", required=True, metavar="REPORT",
                        help="benchmarks.nightly_models reports (same --home) holding the teacher seeds' runs")
    parser.add_argument("--teacher-seeds", type=int, nargs="+", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="students' seeds")
    parser.add_argument("--alpha", type=float, default=0.9, help="weight of the distillation term (1 - alpha: NLL)")
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--epochs", type=int, help="max epochs (default: the configuration's)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--home", default="/tmp/encore_nightly_models")
    parser.add_argument("--out", default="bench_results/ensemble_distillation.json")
    args = parser.parse_args(argv)
    if len(args.teacher_seeds) < 2:
        parser.error("--teacher-seeds needs at least two seeds (an ensemble)")
    apply_common_options(parser, args)
    report = run(args)
    save_report(report, args.out, markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
