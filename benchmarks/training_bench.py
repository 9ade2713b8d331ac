"""Training benchmark: Encore SASRec vs RecBole's SASRec on the same data, side by side.

CLI::

    python -m benchmarks.training_bench --dataset ml-100k --epochs N [--recbole-epochs M] [--device cuda [--bf16]] \
        [--out bench_results/training.json] [--recbole-python .venv-bench/bin/python]

Both run as subprocesses (so each peak RSS is its own): Encore in this venv,
RecBole in a separate benchmark venv (``.venv-bench``: torch + recbole==1.2.1;
recbole is never a dependency of the package). Same hyper-parameters: hidden
64, 2 layers, 2 heads, FFN 4x (256), dropout 0.2, max_len 50, batch 256, Adam(W)
lr 1e-3 without weight decay, no prediction layer (RecBole's SASRec scores the
last hidden state against the item table; ``--encore-prediction-layer`` keeps
the seed's FC + GELU), full-softmax cross-entropy over all items
(RecBole's SASRec ``loss_type=CE``), early stopping on valid NDCG@10 with
patience 3 by default (`--patience`, RecBole ``stopping_step``), same torch thread count.

What differs by design, and is reported rather than hidden:

* Training samples. Both epochs cover every user's whole history before the
  validation target. RecBole trains on every prefix (one target per sample,
  ~97k samples/epoch on ml-100k); Encore cuts the history into windows of
  ``max_len`` events (``SequenceData.split(..., all_windows=True)``) with a
  target at every position, so each next-positive target is trained once per
  epoch. Epoch throughput (epochs/s) is the like-for-like speed; sequences/s,
  targets/s (supervised positions per second) and tokens/s are reported too.
* Batch size. A RecBole sample has one target, an Encore window up to 49, so the
  batch is counted in targets: RecBole 256 prefixes = 256 targets per step, Encore
  ``encore_batch_size`` (default 16) windows, about 630 targets per step on ml-100k.
  With 256 windows Encore would take ~10 optimizer steps per epoch against
  RecBole's ~380 and stop early long before converging.
* Data. Encore's split (DESIGN): the last *positive* (rating > 2) event is the
  test target, ratings <= 2 are negative signal. RecBole reads an atomic file
  written from our split (``write_recbole_inter``): each user's events up to and
  including our test target, in our order, so its leave-one-out test target and
  its test input (the 50 events before it) are ours and none of its training
  prefixes contains the target (with the raw ml-100k file, a user whose newest
  ratings are negative has our test target inside RecBole's training data).
  Validation targets differ (RecBole: the event before the test target, any
  rating; Encore: the second-last positive), so each framework selects its best
  epoch on its own validation protocol.
* Evaluation protocol (``PROTOCOLS``). Both rank the test target among all items
  by the same full-ranking NDCG@10 and differ only in what they remove from the
  ranking: Encore's evaluator every item the user rated before the target
  (``exclude="history"``); RecBole 1.2.1's evaluator, for a sequential model,
  nothing but the padding item (``FullSortEvalDataLoader.collate_fn`` returns no
  ``history_index`` when ``MODEL_TYPE`` is sequential, so
  ``Trainer._full_sort_batch_eval`` masks column 0 only). An ml-100k user rates
  an item once, so every rated item in RecBole's top 10 is a certain miss, and
  SASRec ranks many there (40 % of the slots): RecBole's number is much lower. Each
  model is scored under both: the Encore model with ``evaluate_model`` and each
  exclusion, RecBole's model by RecBole's trainer and by ``evaluate_model`` on its
  scores of our test inputs (computed in the RecBole venv); its "no exclusion"
  score reproduces RecBole's own evaluator (``verdict``).

Peak memory = ``ru_maxrss`` of each worker process (includes data loading), and on a GPU
(``--device cuda [--bf16]``) ``torch.cuda.max_memory_allocated``. Model FLOP/s count the
useful work of an epoch (``sasrec_training_flops``: real tokens and trained targets, forward
+ backward); on a GPU their share of its dense bf16 peak is reported (RecBole trains in fp32:
its trainer has no autocast).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HPARAMS = dict(hidden=64, layers=2, heads=2, dropout=0.2, max_seq_len=50, batch_size=256, lr=1e-3, patience=3, seed=0,
               encore_batch_size=16, encore_window_stride=0, encore_train_target="next_positive",
               encore_prediction_layer=False)
RECBOLE_DATASET = "ml-100k-encore-split"
FULL_HISTORY = 100_000  # events kept per user: all of them (ml-100k's longest history is 737)
# evaluation protocol -> ``evaluate_model``'s ``exclude``: the user's items removed from the ranking
PROTOCOLS = {"encore": "history", "recbole": "none"}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


# ---- Encore worker (main venv) ------------------------------------------------------------


def encore_worker(spec: dict) -> dict:
    import torch

    from benchmarks.experiments import load_sequences
    from training.evaluation import evaluate_model
    from training.models import build_model
    from training.trainer import Trainer, TrainSettings, seed_everything

    torch.set_num_threads(spec["threads"])
    hp = spec["hparams"]
    _, data, _, info = load_sequences(spec["dataset"], spec["home"], hp["max_seq_len"], history_len=FULL_HISTORY)
    settings = TrainSettings(
        epochs=spec["epochs"], batch_size=hp["encore_batch_size"], lr=hp["lr"], weight_decay=0.0,
        max_seq_len=hp["max_seq_len"], window_stride=hp["encore_window_stride"],
        train_target=hp["encore_train_target"], loss="full_softmax",
        contrastive="none", patience=hp["patience"],
        seed=hp["seed"], device=spec["device"], bf16=spec["bf16"], progress=False,
    )
    seed_everything(hp["seed"])
    model = build_model("sasrec", data.n_items, max_seq_len=hp["max_seq_len"], hidden=hp["hidden"],
                        layers=hp["layers"], heads=hp["heads"], dropout=hp["dropout"],
                        prediction_layer=hp["encore_prediction_layer"])
    trainer = Trainer(model, data, settings)
    train = trainer.train_split
    n_seqs = len(train)
    n_targets = int((train.next_pos != 0).sum())
    n_tokens = int((train.seq != 0).sum())
    if spec["device"] == "cuda":
        torch.cuda.reset_peak_memory_stats()
    epochs, best, best_epoch, bad, best_state = [], -1.0, 0, 0, None
    for epoch in range(1, spec["epochs"] + 1):
        started = time.perf_counter()
        losses = trainer.train_epoch(epoch)
        train_s = time.perf_counter() - started
        started = time.perf_counter()
        valid = trainer.evaluate("valid")
        epochs.append({"epoch": epoch, "train_seconds": train_s, "valid_seconds": time.perf_counter() - started,
                       "loss": losses["loss"], "valid_ndcg@10": valid["ndcg@10"]})
        print(f"encore epoch {epoch}: {train_s:.1f}s loss={losses['loss']:.4f} valid ndcg@10={valid['ndcg@10']:.4f}",
              flush=True)
        if valid["ndcg@10"] > best:
            best, best_epoch, bad = valid["ndcg@10"], epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
            if bad >= hp["patience"]:
                break
    model.load_state_dict(best_state)
    split = data.split("test", hp["max_seq_len"])
    test = {protocol: evaluate_model(model, split, data.n_items, exclude=exclude, device=spec["device"],
                                     bf16=spec["bf16"])
            for protocol, exclude in PROTOCOLS.items()}
    tokens = [[data.vocab.item_ids[i - 1] for i in row if i] for row in split.seq.tolist()]
    Path(spec["test_inputs"]).write_text(json.dumps({"item_ids": data.vocab.item_ids, "inputs": tokens}))
    write_recbole_inter(data, Path(spec["recbole_data"]) / RECBOLE_DATASET / f"{RECBOLE_DATASET}.inter")
    train_times = [e["train_seconds"] for e in epochs]
    return {
        "framework": "encore",
        "data": info,
        "train_sequences_per_epoch": n_seqs,
        "train_targets_per_epoch": n_targets,
        "train_tokens_per_epoch": n_tokens,
        "epochs_run": len(epochs),
        "best_epoch": best_epoch,
        "epoch_seconds_mean": sum(train_times) / len(train_times),
        "epoch_seconds_median": sorted(train_times)[len(train_times) // 2],
        "valid_ndcg@10": best,
        "test_ours": test["encore"],
        "test_recbole_protocol": test["recbole"],
        "epochs": epochs,
        "train_flops_per_epoch": sasrec_training_flops(n_tokens, n_targets, hp["hidden"], hp["layers"],
                                                       hp["max_seq_len"], data.n_items),
        "precision": "bf16 autocast" if spec["bf16"] else "fp32",
        **_device_report(spec["device"]),
    }


def sasrec_training_flops(tokens: int, targets: int, hidden: int, layers: int, max_len: int, n_items: int) -> float:
    """Model FLOPs of one SASRec training epoch, counted as for MFU: forward + backward = 3x forward.

    Forward, per real (non-padding) input token and layer: the Q/K/V/O projections (4 d^2
    multiply-adds) and the 4x FFN (8 d^2), attention scores and weighted sum over
    ``max_len`` positions (2 max_len d); per trained target the full-softmax logits over the
    item table (d n_items). A multiply-add is 2 FLOPs. Padding positions are not counted.
    """
    per_token = layers * 2 * (12 * hidden * hidden + 2 * max_len * hidden)
    per_target = 2 * hidden * n_items
    return 3.0 * (tokens * per_token + targets * per_target)


# dense bf16 tensor-core peaks from NVIDIA's datasheets (TFLOP/s), most specific name first
BF16_PEAK_TFLOPS = (("H100 PCIe", 756.0), ("H100 NVL", 835.5), ("H100", 989.4), ("H200", 989.4), ("A100", 312.0))


def bf16_peak_flops(device_name: str) -> float | None:
    for needle, tflops in BF16_PEAK_TFLOPS:
        if needle in device_name:
            return tflops * 1e12
    return None


def _device_report(device: str) -> dict:
    import torch

    report = {"device": device, "peak_rss_mb": _peak_rss_mb(), "threads": torch.get_num_threads(),
              "torch": torch.__version__}
    if device == "cuda":
        name = torch.cuda.get_device_name()
        report.update(gpu=name, bf16_peak_flops=bf16_peak_flops(name),
                      peak_gpu_mb=torch.cuda.max_memory_allocated() / 2**20)
    return report


def write_recbole_inter(data, path: Path) -> int:
    """RecBole atomic file of what our split lets a model train and test on: each user's
    events up to and including our test target, in our order (timestamp = position), so
    RecBole's leave-one-out test target is ours and no training prefix contains it."""
    import numpy as np

    has_test = data.test_idx >= 0
    users = np.flatnonzero(has_test)
    lengths = data.test_idx[users] + 1
    rows = np.repeat(users, lengths)
    position = np.arange(len(rows)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    items = data.items[data.offsets[rows] + position]
    item_ids = np.asarray(data.vocab.item_ids, dtype=object)[items - 1]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        out.write("user_id:token\titem_id:token\ttimestamp:float\n")
        out.writelines(f"{u}\t{i}\t{t}\n" for u, i, t in zip(data.user_ids[rows], item_ids, position))
    return len(rows)


# ---- RecBole worker (benchmark venv) -------------------------------------------------------


def _numpy2_shims() -> None:
    """RecBole 1.2.1 uses aliases numpy 2 removed; torch.load needs weights_only=False for its checkpoints."""
    import functools

    import numpy as np
    import torch

    for name, value in {"float_": np.float64, "complex_": np.complex128, "unicode_": np.str_, "string_": np.bytes_,
                        "bool8": np.bool_, "int0": np.intp, "uint0": np.uintp, "object0": np.object_,
                        "NaN": np.nan, "Inf": np.inf, "float": float, "int": int, "bool": bool}.items():
        if name not in np.__dict__:
            setattr(np, name, value)
    if not getattr(torch.load, "_encore_shim", False):
        original = torch.load

        @functools.wraps(original)
        def load(*args, **kwargs):
            kwargs.setdefault("weights_only", False)
            return original(*args, **kwargs)

        load._encore_shim = True
        torch.load = load


def recbole_worker(spec: dict) -> dict:
    _numpy2_shims()
    import logging

    import numpy as np
    import recbole
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.data.interaction import Interaction
    from recbole.model.sequential_recommender import SASRec
    from recbole.trainer import Trainer
    from recbole.utils import init_logger, init_seed

    torch.set_num_threads(spec["threads"])
    hp = spec["hparams"]
    checkpoints = tempfile.mkdtemp(prefix="recbole_ckpt_")
    config = Config(model="SASRec", dataset=RECBOLE_DATASET, config_dict={
        "data_path": spec["recbole_data"],
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "hidden_size": hp["hidden"], "inner_size": 4 * hp["hidden"], "n_layers": hp["layers"], "n_heads": hp["heads"],
        "hidden_dropout_prob": hp["dropout"], "attn_dropout_prob": hp["dropout"], "hidden_act": "gelu",
        "loss_type": "CE", "train_neg_sample_args": None, "MAX_ITEM_LIST_LENGTH": hp["max_seq_len"],
        "train_batch_size": hp["batch_size"], "eval_batch_size": 4096, "learning_rate": hp["lr"], "weight_decay": 0.0,
        "epochs": spec["epochs"], "stopping_step": hp["patience"], "eval_step": 1, "seed": hp["seed"],
        "reproducibility": True, "device": spec["device"], "use_gpu": spec["device"] == "cuda",
        "show_progress": False,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
        "metrics": ["Hit", "NDCG", "MRR"], "topk": [1, 5, 10, 20], "valid_metric": "NDCG@10",
        "checkpoint_dir": checkpoints, "save_dataset": False, "save_dataloaders": False, "worker": 0,
        "log_wandb": False, "state": "WARNING",
    })
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logging.getLogger().setLevel(logging.WARNING)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    model = SASRec(config, train_data._dataset).to(spec["device"])
    trainer = Trainer(config, model)
    if spec["device"] == "cuda":
        torch.cuda.reset_peak_memory_stats()

    epoch_times: list[float] = []
    original = trainer._train_epoch

    def timed_epoch(*args, **kwargs):
        started = time.perf_counter()
        out = original(*args, **kwargs)
        epoch_times.append(time.perf_counter() - started)
        print(f"recbole epoch {len(epoch_times)}: {epoch_times[-1]:.1f}s loss={float(out):.4f}", flush=True)
        return out

    trainer._train_epoch = timed_epoch
    valid_curve: list[float] = []
    original_valid = trainer._valid_epoch

    def recorded_valid(*args, **kwargs):
        score, result = original_valid(*args, **kwargs)
        valid_curve.append(float(score))
        print(f"recbole epoch {len(valid_curve)}: valid ndcg@10={valid_curve[-1]:.4f}", flush=True)
        return score, result

    trainer._valid_epoch = recorded_valid
    best_valid, valid_result = trainer.fit(train_data, valid_data, saved=True, show_progress=False)
    test_result = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
    n_samples = len(train_data._dataset)
    lengths = train_data._dataset.inter_feat[model.ITEM_SEQ_LEN]

    # RecBole's trained model on OUR test inputs: scores in our column order
    ours = json.loads(Path(spec["test_inputs"]).read_text())
    iid = dataset.iid_field
    # an item that only occurs after every user's test target is unknown to RecBole: never recommended
    token_id = dataset.field2token_id[iid]
    known = torch.tensor([item in token_id for item in ours["item_ids"]])
    columns = torch.tensor([token_id.get(item, 0) for item in ours["item_ids"]])
    seq = torch.zeros(len(ours["inputs"]), hp["max_seq_len"], dtype=torch.long)
    length = torch.zeros(len(ours["inputs"]), dtype=torch.long)
    for row, tokens in enumerate(ours["inputs"]):
        ids = dataset.token2id(iid, tokens[-hp["max_seq_len"]:]) if tokens else []
        seq[row, : len(ids)] = torch.as_tensor(np.asarray(ids))
        length[row] = max(len(ids), 1)
    model.eval()
    with torch.no_grad():
        inputs = Interaction({model.ITEM_SEQ: seq, model.ITEM_SEQ_LEN: length}).to(spec["device"])
        scores = model.full_sort_predict(inputs).cpu()
    scores = scores[:, columns].masked_fill(~known, float("-inf"))
    np.save(spec["scores_out"], scores.numpy().astype(np.float32))
    return {
        "framework": "recbole",
        "recbole": recbole.__version__,
        "train_sequences_per_epoch": n_samples,
        "train_targets_per_epoch": n_samples,
        "train_tokens_per_epoch": int(lengths.sum()),
        "epochs_run": len(epoch_times),
        "epoch_seconds_mean": sum(epoch_times) / len(epoch_times),
        "epoch_seconds_median": sorted(epoch_times)[len(epoch_times) // 2],
        "epoch_seconds": epoch_times,
        "valid_ndcg@10": float(best_valid),
        "valid_ndcg@10_per_epoch": valid_curve,
        "test_recbole_protocol": {k: float(v) for k, v in test_result.items()},
        "train_flops_per_epoch": sasrec_training_flops(int(lengths.sum()), n_samples, hp["hidden"], hp["layers"],
                                                       hp["max_seq_len"], dataset.item_num - 1),
        "precision": "fp32",  # RecBole's trainer has no autocast
        **_device_report(spec["device"]),
        "n_items": dataset.item_num - 1,
        "n_users": dataset.user_num - 1,
    }


# ---- driver (main venv) --------------------------------------------------------------------


class PrecomputedScorer:
    """``score_all`` that hands out rows of a precomputed ``[U, n_items]`` score matrix in order
    (``evaluate_model`` walks the split sequentially)."""

    def __init__(self, scores):
        self.scores, self.cursor = scores, 0

    def score_all(self, seqs, context=None):
        out = self.scores[self.cursor : self.cursor + len(seqs)]
        self.cursor += len(seqs)
        return out


def score_recbole_on_our_split(scores_path: str, home: str, max_seq_len: int) -> dict[str, dict]:
    """Encore's evaluator on RecBole's scores of our test inputs, per protocol (``PROTOCOLS``)."""
    import numpy as np
    import torch

    from benchmarks.experiments import load_sequences
    from training.evaluation import evaluate_model

    _, data, _, _ = load_sequences("ml-100k", home, max_seq_len, history_len=FULL_HISTORY)
    scores = torch.from_numpy(np.load(scores_path))
    split = data.split("test", max_seq_len)
    if scores.shape != (len(split), data.n_items):
        raise ValueError(f"RecBole scores {tuple(scores.shape)} do not match our test split {(len(split), data.n_items)}")
    return {protocol: evaluate_model(PrecomputedScorer(scores), split, data.n_items, exclude=exclude,
                                     batch_size=len(split))
            for protocol, exclude in PROTOCOLS.items()}


def _run_worker(python: str, name: str, spec: dict, workdir: Path, nice: int) -> dict:
    spec_path, out_path = workdir / f"{name}_spec.json", workdir / f"{name}_result.json"
    spec = {**spec, "result": str(out_path)}
    spec_path.write_text(json.dumps(spec))
    command = [python, "-m", "benchmarks.training_bench", "--worker", name, "--spec", str(spec_path)]
    if nice:
        command = ["nice", "-n", str(nice), *command]
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    result = json.loads(out_path.read_text())
    result["worker_wall_seconds"] = time.perf_counter() - started
    return result


def model_flops_utilization(result: dict) -> tuple[float, float | None]:
    """Achieved model FLOP/s of the median epoch and its share of the GPU's bf16 peak (None off GPU)."""
    achieved = result["train_flops_per_epoch"] / result["epoch_seconds_median"]
    peak = result.get("bf16_peak_flops")
    return achieved, (achieved / peak if peak else None)


def markdown(encore: dict, recbole: dict | None) -> str:
    def row(name: str, r: dict, ours: dict | None, own: dict | None) -> str:
        epoch = r["epoch_seconds_median"]
        achieved, share = model_flops_utilization(r)
        share_text = "n/a" if share is None else f"{share:.2%}"
        gpu_memory = f"{r['peak_gpu_mb']:.0f}" if "peak_gpu_mb" in r else "n/a"
        return (
            f"| {name} | {epoch:.2f} | {r['train_sequences_per_epoch'] / epoch:,.0f} | "
            f"{r['train_targets_per_epoch'] / epoch:,.0f} | {r['train_tokens_per_epoch'] / epoch:,.0f} | "
            f"{r['epochs_run']} | {(own or {}).get('ndcg@10', float('nan')):.4f} | "
            f"{(ours or {}).get('ndcg@10', float('nan')):.4f} | {r['peak_rss_mb']:.0f} | "
            f"{r.get('gpu', r['device'])}, {r['precision']} | {achieved / 1e12:.3f} | "
            f"{share_text} | {gpu_memory} |"
        )

    lines = [
        "| framework | epoch time (s, median) | sequences/s | targets/s | tokens/s | epochs run | "
        "NDCG@10 (RecBole protocol: nothing excluded) | NDCG@10 (Encore protocol: history excluded) | "
        "peak RSS (MB) | device, precision | "
        "model TFLOP/s | share of bf16 peak | peak GPU memory (MB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        row("Encore SASRec", encore, encore["test_ours"], encore.get("test_recbole_protocol")),
    ]
    if recbole:
        lines.append(row(f"RecBole {recbole['recbole']} SASRec", recbole, recbole.get("test_ours"),
                         recbole["test_recbole_protocol"]))
    return "\n".join(lines).replace("| nan |", "| n/a |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.training_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", choices=["encore", "recbole"], help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--dataset", default="ml-100k", choices=["ml-100k"])
    parser.add_argument("--epochs", type=int, default=50, help="max epochs (early stopping, patience 3)")
    parser.add_argument("--recbole-epochs", type=int, help="max RecBole epochs (default: --epochs)")
    parser.add_argument("--hidden", type=int, default=HPARAMS["hidden"], choices=[64, 128])
    parser.add_argument("--encore-batch-size", type=int, default=HPARAMS["encore_batch_size"],
                        help="Encore windows per batch (RecBole: 256 prefixes)")
    parser.add_argument("--encore-window-stride", type=int, default=HPARAMS["encore_window_stride"],
                        help="events between Encore's training windows (0 = max_len - 1, no overlap)")
    parser.add_argument("--encore-train-target", default=HPARAMS["encore_train_target"],
                        choices=["next_positive", "next_item"],
                        help="Encore's training target (RecBole trains on every next item)")
    parser.add_argument("--encore-prediction-layer", action="store_true",
                        help="keep the seed's FC + GELU prediction layer (RecBole's SASRec has none)")
    parser.add_argument("--patience", type=int, default=HPARAMS["patience"],
                        help="early-stopping patience in epochs, both frameworks")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for both")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where both train")
    parser.add_argument("--bf16", action="store_true",
                        help="Encore trains under bf16 autocast (CUDA); RecBole's trainer has none (fp32)")
    parser.add_argument("--nice", type=int, default=10)
    parser.add_argument("--recbole-python", default=str(ROOT / ".venv-bench" / "bin" / "python"))
    parser.add_argument("--skip-recbole", action="store_true")
    parser.add_argument("--home", default="/tmp/encore_bench", help="scratch ENCORE_HOME (dataset cache)")
    parser.add_argument("--out", default="bench_results/training.json")
    args = parser.parse_args(argv)

    if args.worker:
        spec = json.loads(Path(args.spec).read_text())
        result = (encore_worker if args.worker == "encore" else recbole_worker)(spec)
        Path(spec["result"]).write_text(json.dumps(result, indent=2, default=str))
        return 0

    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda: torch sees no CUDA device here")
    hparams = {**HPARAMS, "hidden": args.hidden, "encore_batch_size": args.encore_batch_size,
               "encore_window_stride": args.encore_window_stride, "encore_train_target": args.encore_train_target,
               "encore_prediction_layer": args.encore_prediction_layer,
               "patience": args.patience}
    workdir = Path(tempfile.mkdtemp(prefix="encore_bench_"))
    base = {"dataset": args.dataset, "hparams": hparams, "threads": args.threads, "home": args.home,
            "device": args.device, "bf16": args.bf16,
            "test_inputs": str(workdir / "test_inputs.json"), "recbole_data": str(workdir / "recbole_data")}
    encore = _run_worker(sys.executable, "encore", {**base, "epochs": args.epochs}, workdir, args.nice)
    recbole = None
    if not args.skip_recbole:
        scores = str(workdir / "recbole_scores.npy")
        recbole = _run_worker(args.recbole_python, "recbole",
                              {**base, "epochs": args.recbole_epochs or args.epochs, "scores_out": scores},
                              workdir, args.nice)
        on_our_split = score_recbole_on_our_split(scores, args.home, hparams["max_seq_len"])
        recbole["test_ours"] = on_our_split["encore"]
        recbole["test_recbole_protocol_by_encore_evaluator"] = on_our_split["recbole"]
    table = markdown(encore, recbole)
    verdict = {}
    if recbole:
        verdict["epoch_throughput_ratio"] = recbole["epoch_seconds_median"] / encore["epoch_seconds_median"]
        for unit in ("sequences", "targets", "tokens"):
            ratio = (encore[f"train_{unit}_per_epoch"] / encore["epoch_seconds_median"]) / (
                recbole[f"train_{unit}_per_epoch"] / recbole["epoch_seconds_median"])
            verdict[f"{unit}_per_s_ratio"] = ratio
        verdict["throughput_target_3x_met"] = verdict["epoch_throughput_ratio"] >= 3.0
        verdict["ndcg@10_ours_vs_recbole_on_our_protocol"] = (
            encore["test_ours"]["ndcg@10"], recbole["test_ours"]["ndcg@10"])
        verdict["ndcg_target_met"] = encore["test_ours"]["ndcg@10"] >= recbole["test_ours"]["ndcg@10"]
        verdict["ndcg@10_ours_vs_recbole_on_recbole_protocol"] = (
            encore["test_recbole_protocol"]["ndcg@10"], recbole["test_recbole_protocol"]["ndcg@10"])
        # the same protocol, two implementations: RecBole's evaluator vs ours on RecBole's scores
        verdict["recbole_ndcg@10_on_recbole_protocol_by_recbole_vs_encore_evaluator"] = (
            recbole["test_recbole_protocol"]["ndcg@10"],
            recbole["test_recbole_protocol_by_encore_evaluator"]["ndcg@10"])
        verdict["time_to_best_seconds"] = {
            "encore": sum(e["train_seconds"] for e in encore["epochs"][: encore["best_epoch"]]),
            "recbole_epochs_run_seconds": sum(recbole["epoch_seconds"]),
        }
    for name, result in (("encore", encore), ("recbole", recbole)):
        if result:
            achieved, share = model_flops_utilization(result)
            verdict[f"{name}_model_tflops"], verdict[f"{name}_share_of_bf16_peak"] = achieved / 1e12, share
    command = "python -m benchmarks.training_bench " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"\n{args.dataset}, SASRec, hidden {hparams['hidden']}, {hparams['layers']} layers, {hparams['heads']} heads, "
          f"max_len {hparams['max_seq_len']}, batch {hparams['batch_size']} (Encore: {hparams['encore_batch_size']} windows), lr {hparams['lr']}, full-softmax CE, "
          f"{args.threads} torch thread(s), CPU:\n")
    print(table)
    if verdict:
        print("\n" + json.dumps(verdict, indent=2))
    report = {"command": command, "hparams": hparams, "threads": args.threads, "encore": encore, "recbole": recbole,
              "verdict": verdict, "markdown": table, "notes": __doc__}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
