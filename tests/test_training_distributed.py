"""Data-parallel SASRec training under torchrun (2 CPU processes, gloo) against one process.

One torchrun launch (``benchmarks.ddp_bench.train_on_ranks``) trains, one run after the
other in the same 2 processes: the exact configuration, the nightly-like one, and that one
again stopped after epoch 1 and resumed from its checkpoint. The single-process runs train
in this process with the same total batch (32 windows per step; 16 per rank under DDP).

Tolerance of the nightly-like comparison (sampled softmax with in-batch targets, InfoNCE,
dropout), measured with this data and these settings over seeds 0-5: best validation NDCG@10
of one process 0.853 ± 0.056 (mean ± std over seeds), of 2 processes 0.852 ± 0.052; the
per-seed gap was at most 0.023. So 0.05, below one seed-to-seed std, is "within noise" and
still fails a DDP run that learns clearly less. Without sampling, dropout and InfoNCE the two
runs differ only in how the per-rank means weigh the targets, so they must agree closely.
"""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
import torch

from benchmarks.ddp_bench import train_on_ranks
from encore.core.config import ConfigError, load_config
from toy_data import toy_sequence_table, toy_training_examples, write_toy_marts
from training.data import SequenceData
from training.models import build_model
from training.trainer import Trainer, TrainSettings, seed_everything

SETTINGS = dict(epochs=4, batch_size=32, lr=5e-3, max_seq_len=16, n_sampled=10, patience=50, seed=5,
                contrastive="item")
MODEL = dict(hidden=32, layers=1, heads=2, dropout=0.1)
EXACT = {"settings": {"loss": "full_softmax", "contrastive": "none", "epochs": 3}, "model": {"dropout": 0.0}}
NDCG_TOLERANCE = 0.05  # see the module docstring


@pytest.fixture(scope="module")
def sequences(tmp_path_factory):
    """The toy marts as Parquet files: (fct_user_sequences rows, fct_training_examples rows)."""
    directory = tmp_path_factory.mktemp("ddp_data")
    table = toy_sequence_table(n_users=256, n_items=30, skip_rate=0.25, seed=1)
    pq.write_table(table, directory / "sequences.parquet")
    pq.write_table(toy_training_examples(table), directory / "examples.parquet")
    return directory / "sequences.parquet", directory / "examples.parquet"


@pytest.fixture(scope="module")
def two_processes(sequences, tmp_path_factory):
    directory = tmp_path_factory.mktemp("ddp_runs")
    runs = [EXACT,
            {"checkpoint_dir": str(directory / "uninterrupted")},
            {"settings": {"epochs": 1}, "checkpoint_dir": str(directory / "resumed")},  # "stops" after epoch 1
            {"checkpoint_dir": str(directory / "resumed")}]  # the next launch: resumes to epoch 4
    results = train_on_ranks(*sequences, 2, SETTINGS, 1, directory / "results.json", runs=runs, model=MODEL)
    return dict(zip(("exact", "nightly", "first_epoch", "resumed"), results))


def one_process(sequences, run: dict | None = None):
    run = run or {}
    torch.set_num_threads(1)
    data = SequenceData.from_arrow(pq.read_table(sequences[0]).sort_by("user_id"), pq.read_table(sequences[1]))
    settings = TrainSettings(**{**SETTINGS, **run.get("settings", {}), "device": "cpu", "progress": False})
    seed_everything(settings.seed)
    model = build_model("sasrec", data.n_items, max_seq_len=settings.max_seq_len, **{**MODEL, **run.get("model", {})})
    trainer = Trainer(model, data, settings)
    return trainer.fit(), len(trainer.train_split)


def test_two_processes_average_gradients_like_one_process(sequences, two_processes):
    single, windows = one_process(sequences, EXACT)
    ddp = two_processes["exact"]
    assert ddp["world_size"] == 2 and ddp["train_windows"] == windows
    assert [row["epoch"] for row in ddp["history"]] == [1, 2, 3]
    for mine, theirs in zip(ddp["history"], single.history):
        assert mine["loss"] == pytest.approx(theirs["loss"], rel=5e-3)
        assert mine["valid_ndcg@10"] == pytest.approx(theirs["valid_ndcg@10"], abs=0.03)


def test_two_processes_reach_the_single_process_validation_ndcg(sequences, two_processes):
    single, _ = one_process(sequences)
    ddp = two_processes["nightly"]
    first_epoch = ddp["history"][0]["valid_ndcg@10"]
    assert ddp["best_valid"]["ndcg@10"] > first_epoch + 0.05  # it learns over the epochs
    assert ddp["best_valid"]["ndcg@10"] == pytest.approx(single.best_valid["ndcg@10"], abs=NDCG_TOLERANCE)


def test_resumed_run_continues_from_the_checkpoint(two_processes):
    uninterrupted, first, resumed = (two_processes[k] for k in ("nightly", "first_epoch", "resumed"))
    assert [row["epoch"] for row in first["history"]] == [1]
    assert [row["epoch"] for row in resumed["history"]] == [1, 2, 3, 4]
    assert resumed["history"][0] == first["history"][0]  # epoch 1 came from the checkpoint, not retrained
    # every rank restored its own RNG state, so epochs 2-4 are those of the run that never stopped
    for mine, theirs in zip(resumed["history"], uninterrupted["history"]):
        assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-6)
        assert mine["valid_ndcg@10"] == pytest.approx(theirs["valid_ndcg@10"], rel=1e-6)
    assert resumed["test"] == pytest.approx(uninterrupted["test"], rel=1e-6)


@pytest.mark.slow
def test_nightly_trains_with_torchrun_and_only_rank_0_tracks(tmp_path):
    """``training.world_size = 2``: what the nightly's train task runs (``training.launch``), end to
    end with MLflow (about a minute: two processes import the trainer, rank 0 sets up MLflow)."""
    from mlflow import MlflowClient

    from training.launch import train_with_torchrun

    cfg = load_config(environ={}, paths={"home": str(tmp_path)},
                      training={"world_size": 2, "epochs": 2, "batch_size": 32, "max_seq_len": 16, "n_sampled": 10,
                                "hidden": 32, "layers": 1, "heads": 2, "lr": 5e-3})
    write_toy_marts(cfg, "2026-10-30", toy_sequence_table(n_users=64, n_items=30, seed=2))

    result = train_with_torchrun(cfg, "2026-10-30", "sasrec", dataset="toy_source")

    assert result["model_name"] == "sasrec+cl_item" and result["model_version"] == "1"
    assert (tmp_path / "checkpoints" / "toy_source" / "2026-10-30" / "sasrec+cl_item").is_dir()
    assert 0 < result["valid"]["ndcg@10"] <= 1 and result["best_epoch"] in (1, 2)
    client = MlflowClient(cfg.paths.mlflow_tracking_uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert [run.info.run_id for run in runs] == [result["run_id"]]  # rank 1 created no run
    assert runs[0].data.tags["dataset"] == "toy_source"
    assert [m.step for m in client.get_metric_history(result["run_id"], "loss")] == [1, 2]
    assert [str(v.version) for v in client.search_model_versions(f"name='{cfg.promotion.registered_model}'")] == ["1"]


def test_world_size_must_divide_the_batch_and_baselines_stay_single_process(tmp_path):
    from training.launch import train_with_torchrun

    with pytest.raises(ConfigError, match="batch_size .* must be divisible by training.world_size"):
        load_config(environ={}, training={"world_size": 3, "batch_size": 64})
    cfg = load_config(environ={}, paths={"home": str(tmp_path)}, training={"world_size": 2})
    with pytest.raises(ConfigError, match="baselines fit in one process"):
        train_with_torchrun(cfg, "2026-10-30", "item_knn")
