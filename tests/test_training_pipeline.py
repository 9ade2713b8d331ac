"""Trainer, checkpoint resume, MLflow tracking/registry, inference and CLI."""

from __future__ import annotations

import fcntl

import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from encore.core import lake
from encore.core.config import ConfigError
from encore.core.contracts import MODEL_RUN, arrow_schema
from training.data import SequenceData
from training.evaluation import evaluate_model
from training.inference import load_model_for_inference, recommend_top_k
from training.models import build_model
from toy_data import toy_data, toy_sequence_table, write_toy_marts
from training.trainer import CheckpointInUseError, Trainer, TrainSettings, seed_everything

SMALL = dict(hidden=32, layers=1, heads=2, dropout=0.1, max_seq_len=16)


@pytest.fixture(scope="module")
def toy() -> SequenceData:
    return toy_data(n_users=48, n_items=20, skip_rate=0.25, seed=1)


def settings(**kw) -> TrainSettings:
    base = dict(epochs=3, batch_size=16, lr=5e-3, max_seq_len=16, n_sampled=10, patience=50, seed=5, device="cpu",
                progress=False)
    return TrainSettings(**{**base, **kw})


@pytest.mark.parametrize("tied", [True, False])
def test_sasrec_overfits_a_deterministic_toy_dataset(tied):
    # no skips: the next positive is always the successor of the newest item, so
    # a working causal model must get every validation target right
    clean = toy_data(n_users=32, n_items=20, skip_rate=0.0, seed=1)
    seed_everything(0)
    model = build_model("sasrec", clean.n_items, **{**SMALL, "dropout": 0.0, "tied_embeddings": tied})
    trainer = Trainer(model, clean, settings(epochs=12, lr=1e-2, loss="full_softmax", eval_exclude="none"))
    result = trainer.fit()
    nll = [row["nll"] for row in result.history]
    assert nll[-1] < 0.1 * nll[0]
    assert result.best_valid["hr@1"] == 1.0


@pytest.mark.parametrize("model_name,contrastive,extra", [
    ("sasrec", "item", {}),
    ("bert4rec", "encoder", {}),
    ("sasrec", "item", {"feedback_embedding": True, "lr_schedule": "cosine"}),
    ("sasrec", "none", {"loss": "gbce", "gbce_negatives": 5}),  # negatives drawn from the restored RNG
    ("sasrec", "item", {"ema_decay": 0.9}),  # the moving average is checkpointed
    ("sasrec", "item", {"ema_epochs": 2}),  # ... and its decay after a resume follows the steps done before it
    ("bert4rec", "none", {"loss": "full_softmax", "exclude_seen": True}),
    ("sasrec", "dropout", {"loss": "full_softmax"}),  # the second pass's dropout masks from the restored RNG
    ("sasrec", "item", {"loss": "full_softmax", "train_target": "next_k"}),
])
def test_resume_gives_same_next_epoch_loss(tmp_path, toy, model_name, contrastive, extra):
    model_settings = {k: v for k, v in extra.items() if k == "feedback_embedding"}
    train_settings = {k: v for k, v in extra.items() if k != "feedback_embedding"}

    class Crash(Exception):
        pass

    def crash_after_epoch_2(epoch, row):
        if epoch == 2:
            raise Crash  # after epoch 2's checkpoint was written

    def run(directory, on_epoch_end=None):
        seed_everything(11)
        model = build_model(model_name, toy.n_items, **SMALL, **model_settings)
        trainer = Trainer(model, toy, settings(epochs=3, contrastive=contrastive, **train_settings),
                          checkpoint_dir=directory, on_epoch_end=on_epoch_end)
        return trainer.fit(resume=True)

    uninterrupted = run(tmp_path / "a")
    with pytest.raises(Crash):
        run(tmp_path / "b", crash_after_epoch_2)
    resumed = run(tmp_path / "b")
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3]
    assert resumed.history[2]["loss"] == pytest.approx(uninterrupted.history[2]["loss"], rel=1e-5)
    assert resumed.history[2]["valid_ndcg@10"] == pytest.approx(uninterrupted.history[2]["valid_ndcg@10"], rel=1e-5)
    assert resumed.history[2]["loss"] != pytest.approx(uninterrupted.history[1]["loss"], rel=1e-5)


def test_a_second_run_on_a_held_checkpoint_directory_fails_and_writes_nothing(tmp_path, toy):
    directory = tmp_path / "sasrec" / "seed5"
    directory.mkdir(parents=True)
    trainer = Trainer(build_model("sasrec", toy.n_items, **SMALL), toy, settings(epochs=1), checkpoint_dir=directory)
    with open(directory / "train.lock", "a+") as held:  # another run's lock
        held.write("pid 4242")
        held.flush()
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(CheckpointInUseError, match=rf"{directory}.*pid 4242"):
            trainer.fit(resume=True)
        assert not (directory / "last.pt").exists() and not (directory / "best.pt").exists()
    assert trainer.fit(resume=True).history[0]["epoch"] == 1  # released: the run goes ahead
    assert (directory / "last.pt").exists()


@pytest.mark.parametrize("span", ["decay", "epochs"])
def test_ema_averages_every_step_and_is_what_is_validated_and_kept(toy, span):
    seed_everything(3)
    model = build_model("sasrec", toy.n_items, **SMALL)
    if span == "decay":
        trainer, decays = Trainer(model, toy, settings(epochs=1, batch_size=24, ema_decay=0.5)), [0.5] * 3
    else:  # 51 windows: 7 steps of 8; a span of 3 steps (decay 2/3) reached after 1 - 2 / (t + 1) grows to it
        trainer = Trainer(model, toy, settings(epochs=1, batch_size=8, ema_epochs=3 / 7))
        decays = [0, 1 / 3, 1 / 2, 3 / 5, 2 / 3, 2 / 3, 2 / 3]
    batch = trainer.settings.batch_size
    initial = model.item_emb.weight.detach().clone()
    after_step = []
    step = trainer.optimizer.step

    def recording_step(*args, **kwargs):
        step(*args, **kwargs)
        after_step.append(model.item_emb.weight.detach().clone())

    trainer.optimizer.step = recording_step
    result = trainer.fit(resume=False)
    assert len(after_step) == -(-len(trainer.train_split) // batch) == len(decays)
    expected = initial  # ema_0 = w_0; ema_t = decay_t ema_(t-1) + (1 - decay_t) w_t
    for decay, weights in zip(decays, after_step):
        expected = decay * expected + (1 - decay) * weights
    assert torch.allclose(model.item_emb.weight, expected, atol=1e-6)  # the kept (best) weights
    assert not torch.allclose(expected, after_step[-1], atol=1e-4)
    assert result.best_valid["ndcg@10"] == pytest.approx(trainer.evaluate()["ndcg@10"])


@pytest.mark.parametrize("checkpoints", [False, True])
def test_after_fit_the_test_split_is_scored_with_the_best_epochs_average_not_the_last(toy, tmp_path, checkpoints):
    # validation says epoch 1 is best (a stub: 0.5, then 0.4, 0.3), training runs on to epoch 3
    seed_everything(3)
    trainer = Trainer(build_model("sasrec", toy.n_items, **SMALL), toy, settings(epochs=3, patience=5, ema_epochs=1),
                      checkpoint_dir=tmp_path if checkpoints else None)
    averages, real_evaluate, scores = {}, trainer._evaluate, iter([0.5, 0.4, 0.3])
    trainer._evaluate = lambda split: {"ndcg@10": next(scores), "hr@10": 0.0}
    trainer.on_epoch_end = lambda epoch, row: averages.update(
        {epoch: {k: v.clone() for k, v in trainer.averaged_state().items()}})
    result = trainer.fit(resume=False)
    trainer._evaluate = real_evaluate
    assert result.best_epoch == 1 and len(result.history) == 3
    kept = trainer.model.state_dict()
    assert all(torch.equal(kept[k], averages[1][k]) for k in averages[1])  # the kept model: epoch 1's average
    assert not torch.allclose(averages[1]["item_emb.weight"], averages[3]["item_emb.weight"], atol=1e-4)
    test_split = toy.split("test", trainer.settings.max_seq_len)
    direct = evaluate_model(trainer.model, test_split, toy.n_items, exclude="history")
    assert trainer.evaluate("test") == pytest.approx(direct)  # not the last epoch's average


def test_ema_epochs_is_a_span_in_epochs_whatever_the_steps_per_epoch(toy):
    trainer = Trainer(build_model("sasrec", toy.n_items, **SMALL), toy, settings(ema_epochs=2.5))
    assert trainer.ema is not None
    assert trainer.ema_decay_per_step(4, 1000) == pytest.approx(0.9)  # 1 - 1 / (2.5 x 4)
    assert trainer.ema_decay_per_step(40, 1000) == pytest.approx(0.99)  # ten times the steps, the same epochs
    # before the span is reached: 1 - 2 / (t + 1), so the first step replaces the initial weights
    assert [trainer.ema_decay_per_step(40, t) for t in (1, 3, 9)] == pytest.approx([0.0, 0.5, 0.8])
    fixed = Trainer(build_model("sasrec", toy.n_items, **SMALL), toy, settings(ema_decay=0.9, ema_epochs=2.5))
    assert fixed.ema_decay_per_step(4, 1) == fixed.ema_decay_per_step(40, 1000) == 0.9  # a decay per step takes precedence
    assert Trainer(build_model("sasrec", toy.n_items, **SMALL), toy, settings()).ema is None
    with pytest.raises(ConfigError, match="ema_epochs must be >= 0"):
        settings(ema_epochs=-1).validate()


def test_checkpoint_of_other_settings_is_not_resumed(tmp_path, toy):
    """A night that failed with lr = 1e6 leaves its epoch-1 checkpoint; the re-run with the
    configured lr must start over, not continue from those weights (found by make chaos)."""
    def run(lr: float, epochs: int):
        seed_everything(11)
        model = build_model("sasrec", toy.n_items, **SMALL)
        return Trainer(model, toy, settings(epochs=epochs, lr=lr), checkpoint_dir=tmp_path).fit(resume=True)

    run(lr=1.0, epochs=1)
    fresh = run(lr=1e-3, epochs=2)
    assert [row["epoch"] for row in fresh.history] == [1, 2]  # started over
    seed_everything(11)
    alone = Trainer(build_model("sasrec", toy.n_items, **SMALL), toy, settings(epochs=2, lr=1e-3)).fit()
    assert fresh.history[0]["loss"] == pytest.approx(alone.history[0]["loss"], rel=1e-6)
    longer = run(lr=1e-3, epochs=3)  # same settings, more epochs: resumes
    assert longer.history[:2] == fresh.history

    def run_cosine(epochs: int):
        seed_everything(11)
        model = build_model("sasrec", toy.n_items, **SMALL)
        return Trainer(model, toy, settings(epochs=epochs, lr=1e-3, lr_schedule="cosine"),
                       checkpoint_dir=tmp_path / "cosine").fit(resume=True)

    short = run_cosine(epochs=1)
    # under cosine the schedule spans all epochs: another epochs value starts over, not resumes
    restarted = run_cosine(epochs=2)
    seed_everything(11)
    alone = Trainer(build_model("sasrec", toy.n_items, **SMALL), toy,
                    settings(epochs=2, lr=1e-3, lr_schedule="cosine")).fit()
    assert restarted.history[0]["loss"] == pytest.approx(alone.history[0]["loss"], rel=1e-6)
    assert restarted.history[0]["loss"] != pytest.approx(short.history[0]["loss"], rel=1e-6)


def test_cosine_schedule_warms_up_then_decays_to_zero(toy):
    from training.trainer import scheduled_lr

    cosine = settings(lr=1.0, lr_schedule="cosine", warmup_share=0.1)
    # 100 steps: 10 of linear warm-up, then 0.5 (1 + cos(pi (step - 10) / 90))
    assert [scheduled_lr(cosine, step, 100) for step in (0, 4, 9, 10)] == pytest.approx([0.1, 0.5, 1.0, 1.0])
    assert scheduled_lr(cosine, 55, 100) == pytest.approx(0.5)
    assert scheduled_lr(cosine, 100, 100) == pytest.approx(0.0)
    assert scheduled_lr(settings(lr=0.3), 55, 100) == 0.3  # constant
    with pytest.raises(ConfigError, match="lr_schedule"):
        settings(lr_schedule="step").validate()
    seed_everything(0)
    trainer = Trainer(build_model("sasrec", toy.n_items, **SMALL), toy, settings(epochs=2, lr=1e-2, lr_schedule="cosine"))
    trainer.fit()
    steps = -(-len(trainer.train_split) // trainer.settings.batch_size)
    last = trainer.optimizer.param_groups[0]["lr"]  # the lr of the last step of epoch 2
    assert last == pytest.approx(scheduled_lr(trainer.settings, 2 * steps - 1, 2 * steps))
    assert 0 < last < 1e-2 * 0.05


def test_early_stopping_and_bad_settings(toy):
    with pytest.raises(ConfigError, match="contrastive"):
        settings(contrastive="both").validate()
    with pytest.raises(ConfigError, match="unknown training setting"):
        from encore.core.config import TrainingConfig

        TrainSettings.from_config(TrainingConfig(), epoch=3)
    seed_everything(0)
    model = build_model("sasrec", toy.n_items, **SMALL)
    result = Trainer(model, toy, settings(epochs=30, lr=1e-12, patience=2)).fit()  # ~no update: nothing improves
    assert result.stopped_early and len(result.history) == 3 and result.best_epoch == 1


def test_recommend_top_k_excludes_history_in_chunks():
    class Fixed:
        def score_all(self, seqs, context=None):
            return torch.arange(5, dtype=torch.float32).repeat(len(seqs), 1)  # item 5 best, then 4, ...

    seqs = torch.tensor([[0, 5, 3], [0, 0, 1], [2, 4, 5]])
    ids, scores = recommend_top_k(Fixed(), seqs, k=2, exclude=True, chunk_size=2)
    assert ids.tolist() == [[4, 2], [5, 4], [3, 1]]
    assert scores.tolist() == [[3.0, 1.0], [4.0, 3.0], [2.0, 0.0]]
    ids, _ = recommend_top_k(Fixed(), seqs, k=1, exclude=False)
    assert ids.tolist() == [[5], [5], [5]]


def test_train_model_tracks_registers_and_serves(cfg, toy):
    import mlflow
    from mlflow import MlflowClient

    from training.train import train_model

    epochs_seen = {}
    out = train_model(cfg, "2026-10-30", "sasrec", data=toy, dataset="toy", epochs=2, contrastive="item",
                      progress=False, on_epoch_end=lambda epoch, row: epochs_seen.update({epoch: row}),
                      **{k: v for k, v in SMALL.items()})
    assert out["model_name"] == "sasrec+cl_item" and out["model_version"] == "1"
    # the caller's hook sees every epoch's validation metrics; the result is the best epoch's
    assert sorted(epochs_seen) == [1, 2]
    assert out["valid"]["ndcg@10"] == pytest.approx(epochs_seen[out["best_epoch"]]["valid_ndcg@10"], abs=1e-6)
    assert 0.0 <= out["test"]["ndcg@10"] <= 1.0 and "skip_mrr" in out["valid"]

    mlflow.set_tracking_uri(cfg.paths.mlflow_tracking_uri)
    assert cfg.paths.mlflow_tracking_uri.startswith("sqlite:///")
    run = MlflowClient().get_run(out["run_id"])
    assert run.data.params["contrastive"] == "item" and run.data.params["n_users"] == "48"
    assert run.data.metrics["test_ndcg_at_10"] == pytest.approx(out["test"]["ndcg@10"])
    history = MlflowClient().get_metric_history(out["run_id"], "loss")
    assert [m.step for m in history] == [1, 2]
    version = MlflowClient().get_model_version(cfg.promotion.registered_model, "1")
    assert version.run_id == out["run_id"] and version.tags["model_name"] == "sasrec+cl_item"

    rows = pq.read_table(out["model_runs_path"])
    assert rows.schema.equals(arrow_schema(MODEL_RUN))
    assert set(rows.column("split").to_pylist()) == {"valid", "test"}
    assert out["model_runs_path"].endswith(f"dt=2026-10-30/{out['run_id']}.parquet")
    assert lake.partition_dates(cfg, "model_runs") == ["2026-10-30"]  # complete: the lake's readers see it

    bundle = load_model_for_inference(cfg, f"models:/{cfg.promotion.registered_model}/1", device="cpu")
    assert bundle.meta["model_version"] == "1" and bundle.vocab.item_ids == toy.vocab.item_ids

    pyfunc = mlflow.pyfunc.load_model(f"models:/{cfg.promotion.registered_model}/1")
    predicted = pyfunc.predict(pd.DataFrame({"item_ids": [["i001", "i002"]]}), params={"k": 4})
    assert len(predicted["item_ids"][0]) == 4 and not {"i001", "i002"} & set(predicted["item_ids"][0])
    # the default SASRec reads the skip flags: they change its scores; absent = nothing skipped
    history = ["i001", "i002", "i003"]
    plain = pyfunc.predict(pd.DataFrame({"item_ids": [history]}), params={"k": 4})
    unskipped = pyfunc.predict(pd.DataFrame({"item_ids": [history], "is_skip": [[False] * 3]}), params={"k": 4})
    skipped = pyfunc.predict(pd.DataFrame({"item_ids": [history], "is_skip": [[False, True, True]]}), params={"k": 4})
    assert plain["scores"][0] == unskipped["scores"][0] != skipped["scores"][0]
    with pytest.raises(Exception, match="is_skip has 1 flags for 3 item_ids"):
        pyfunc.predict(pd.DataFrame({"item_ids": [history], "is_skip": [[True]]}), params={"k": 4})


def test_a_model_that_reads_event_times_is_trained_on_them_and_served_with_them(cfg, toy):
    import mlflow

    from training.models import SASRec, SASRecConfig
    from training.specs import model_config
    from training.train import train_model

    assert toy.event_seconds is not None  # the lake contract's ts: events 3 minutes apart
    out = train_model(cfg, "2026-10-30", "sasrec", data=toy, dataset="toy", epochs=1, contrastive="none",
                      time_embedding=True, progress=False, **SMALL)
    bundle = load_model_for_inference(cfg, f"models:/{cfg.promotion.registered_model}/{out['model_version']}",
                                      device="cpu")
    seed_everything(cfg.training.seed)  # the model train_model started from
    untrained = SASRec(model_config(SASRecConfig, cfg, toy.n_items, time_embedding=True, **SMALL))
    moved = (bundle.model.gap_emb.weight - untrained.gap_emb.weight).abs().amax(dim=1)
    # training moved the embedding of the toy's only gap (180 s: bucket 3 + floor(log2 180) = 10),
    # and of the users' first events (1: unknown), far more than the buckets no event has
    assert moved[10] > 100 * moved[20] and moved[1] > 100 * moved[20]
    pyfunc = mlflow.pyfunc.load_model(f"models:/{cfg.promotion.registered_model}/{out['model_version']}")
    history = ["i001", "i002", "i003"]
    with pytest.raises(Exception, match="reads each event's time: pass an event_ts list"):
        pyfunc.predict(pd.DataFrame({"item_ids": [history]}), params={"k": 4})
    with pytest.raises(Exception, match="event_ts has 2 times for 3 item_ids"):
        pyfunc.predict(pd.DataFrame({"item_ids": [history], "event_ts": [[0, 1]]}), params={"k": 4})
    minutes = pyfunc.predict(pd.DataFrame({"item_ids": [history], "event_ts": [[0, 180, 360]]}), params={"k": 4})
    weeks = pyfunc.predict(pd.DataFrame({"item_ids": [history], "event_ts": [[0, 604_800, 1_209_600]]}),
                           params={"k": 4})
    assert minutes["scores"][0] != weeks["scores"][0]


def test_an_epoch_hook_that_raises_stops_training(cfg, toy):
    """How benchmarks.sasrec_search prunes a trial: its hook raises after an epoch."""
    from training.train import train_model

    class Pruned(Exception):
        pass

    calls = []

    def prune(epoch, row):
        calls.append(epoch)
        raise Pruned(f"epoch {epoch}")

    with pytest.raises(Pruned, match="epoch 1"):
        train_model(cfg, "2026-10-30", "sasrec", data=toy, dataset="toy-pruned", epochs=3, contrastive="none",
                    progress=False, register=False, resume=False, on_epoch_end=prune, **SMALL)
    assert calls == [1]


def test_cli_reports_bad_configuration(cfg, capsys):
    from training.train import main

    assert main(["--run-date", "2026-10-30", "--hidden", "30", "--heads", "8", "--quiet"]) == 2
    assert "divisible" in capsys.readouterr().err
    assert main(["--run-date", "2026-10-30", "--quiet"]) == 2  # no warehouse marts yet
    assert "fct_user_sequences" in capsys.readouterr().err


def test_unknown_settings_are_rejected(cfg, toy):
    from training.train import train_model

    with pytest.raises(ConfigError, match="unknown setting 'hiden'"):
        train_model(cfg, "2026-10-30", "sasrec", data=toy, hiden=32)
    with pytest.raises(ConfigError, match="unknown setting 'phns_mix'"):  # only S-MoE-BST takes a mix
        train_model(cfg, "2026-10-30", "sasrec", data=toy, phns_mix="HARD")


def test_evaluate_registered_version_reads_the_marts(cfg, toy):
    from training.train import evaluate_registered_version, train_model

    write_toy_marts(cfg, "2026-10-30", toy_sequence_table(n_users=48, n_items=20, skip_rate=0.25, seed=1))
    out = train_model(cfg, "2026-10-30", "sasrec", dataset="toy", epochs=1, contrastive="none", progress=False, **SMALL)
    metrics = evaluate_registered_version(cfg, "2026-10-30", out["model_version"])
    assert metrics["ndcg@10"] == pytest.approx(out["valid"]["ndcg@10"], abs=1e-6)


def test_rerun_of_a_finished_training_registers_no_new_version(cfg, toy):
    """A re-run of a date resumes the finished checkpoint: same weights, same registered version."""
    from training.train import train_model

    kwargs = dict(data=toy, dataset="toy", epochs=1, contrastive="none", progress=False, **SMALL)
    first = train_model(cfg, "2026-10-30", "sasrec", **kwargs)
    again = train_model(cfg, "2026-10-30", "sasrec", **kwargs)
    assert first["model_version"] == again["model_version"] == "1"
    assert again["run_id"] != first["run_id"]  # the re-run is still tracked
    other = train_model(cfg, "2026-10-30", "sasrec", **{**kwargs, "seed": 6})  # different weights
    assert other["model_version"] == "2"


def test_a_killed_run_is_marked_failed_by_the_next_run_of_its_name(cfg):
    import mlflow
    from mlflow import MlflowClient

    from training import tracking

    with tracking.start_run(cfg, "warm-up"):
        pass  # creates the experiment
    client = MlflowClient()
    experiment = mlflow.get_experiment_by_name(tracking.EXPERIMENT).experiment_id
    # what a kill -9 leaves: a run that was started and never ended
    killed = client.create_run(experiment, run_name="sasrec-2026-10-30-seed5").info.run_id
    assert client.get_run(killed).info.status == "RUNNING"
    with tracking.start_run(cfg, "sasrec-2026-10-30-seed5") as run:
        assert run.info.run_id != killed
    killed_run = client.get_run(killed)
    assert killed_run.info.status == "FAILED" and "killed" in killed_run.data.tags["encore.ended"]
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    # a run of the same name on another dataset (a benchmark's side-by-side run) is alive: left alone
    alive = client.create_run(experiment, run_name="sasrec-2026-10-30-seed5", tags={"dataset": "ml-100k-b"}).info.run_id
    with tracking.start_run(cfg, "sasrec-2026-10-30-seed5", tags={"dataset": "ml-100k-a"}):
        pass
    assert client.get_run(alive).info.status == "RUNNING"


def test_first_contact_with_a_new_sqlite_store_waits_for_the_setup_lock(cfg):
    """Two processes creating MLflow's tables in one new sqlite file collide; start_run takes
    ``<db>.lock`` first, so while another holder has it nothing is created, then it proceeds."""
    import threading
    import time
    from pathlib import Path

    from training import tracking

    db = Path(cfg.paths.mlflow_tracking_uri.removeprefix("sqlite:///"))
    db.parent.mkdir(parents=True, exist_ok=True)
    finished = []
    with open(f"{db}.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        worker = threading.Thread(target=lambda: finished.append(tracking.start_run(cfg, "waits").__exit__(None, None, None)))
        worker.start()
        # unlocked, the file appears within ~3 s on a loaded 2-core machine (measured); give it 8
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and not db.exists():
            time.sleep(0.1)
        assert worker.is_alive() and not db.exists() and not finished
        fcntl.flock(held, fcntl.LOCK_UN)
    worker.join(timeout=60)
    assert not worker.is_alive() and finished and db.exists()


def test_a_seed_ensemble_is_its_members_from_consecutive_seeds_scored_as_one(cfg, toy):
    """ensemble_seeds=2 at seed 5 = the models of seeds 5 and 6, each as trained alone, scored by
    the mean of their log-softmax scores; it registers and serves like any model."""
    from training.evaluation import evaluate_model
    from training.models.ensemble import SeedEnsemble
    from training.train import train_model

    kwargs = dict(data=toy, dataset="toy", epochs=2, contrastive="none", progress=False, resume=False, **SMALL)
    seen = {}
    ensemble = train_model(cfg, "2026-10-30", "sasrec", ensemble_seeds=2, seed=5,
                           on_epoch_end=lambda epoch, row: seen.setdefault(epoch, {}).update(row), **kwargs)
    assert ensemble["model_name"] == "sasrec+ensemble2" and ensemble["model_version"] == "1"
    assert {"member0_valid_ndcg@10", "member1_valid_ndcg@10"} <= set(seen[1])  # each member's epochs, apart
    alone = [train_model(cfg, "2026-10-30", "sasrec", seed=seed, **kwargs) for seed in (5, 6)]
    served = load_model_for_inference(cfg, f"models:/{cfg.promotion.registered_model}/1", device="cpu")
    members = [load_model_for_inference(cfg, f"models:/{cfg.promotion.registered_model}/{out['model_version']}",
                                        device="cpu").model for out in alone]
    assert isinstance(served.model, SeedEnsemble) and len(served.model.members) == 2
    rows = toy.split("test", SMALL["max_seq_len"]).take(slice(0, 8))
    with torch.no_grad():
        alone_scores = [model.score_all(rows.seq, context=rows) for model in members]
        for member, scores in zip(served.model.members, alone_scores):
            assert torch.allclose(member.score_all(rows.seq, context=rows), scores, atol=1e-5)
        assert not torch.allclose(*alone_scores, atol=1e-3)  # two seeds, two models
        expected = (alone_scores[0].log_softmax(-1) + alone_scores[1].log_softmax(-1)) / 2
        assert torch.allclose(served.model.score_all(rows.seq, context=rows), expected, atol=1e-5)
    test = evaluate_model(SeedEnsemble(served.model.config, members), toy.split("test", SMALL["max_seq_len"]), toy.n_items)
    assert ensemble["test"]["ndcg@10"] == pytest.approx(test["ndcg@10"], abs=1e-6)
    with pytest.raises(ConfigError, match="ensemble_seeds must be >= 1"):
        train_model(cfg, "2026-10-30", "sasrec", ensemble_seeds=0, **kwargs)
    with pytest.raises(ConfigError, match="smoe_bst: ensemble_seeds > 1 is not supported"):
        train_model(cfg, "2026-10-30", "smoe_bst", ensemble_seeds=2, **kwargs)
