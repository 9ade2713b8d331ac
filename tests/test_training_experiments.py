"""Experiment harness: mean ± std over seeds, claim checks, a toy end-to-end grid."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import mlflow
import numpy as np
import pytest

from benchmarks.experiments import (aggregate, check_claims, format_mean_std, markdown_table, mean_std, run_conditions,
                                    run_grid, save_report, verdicts)
from toy_data import toy_data


def test_mean_std_uses_sample_std_and_ignores_nan():
    assert mean_std([1.0, 2.0, 4.0]) == pytest.approx({"mean": 7 / 3, "std": float(np.std([1, 2, 4], ddof=1)), "n": 3})
    assert mean_std([0.5]) == {"mean": 0.5, "std": 0.0, "n": 1}
    assert mean_std([0.2, float("nan"), 0.4])["n"] == 2
    assert math.isnan(mean_std([])["mean"])


def test_benchmark_cells_show_a_spread_only_over_several_runs():
    assert format_mean_std(mean_std([0.30, 0.32])) == "0.3100 ± 0.0141"
    assert format_mean_std(mean_std([0.25, float("nan")])) == "0.2500"
    assert format_mean_std(mean_std([float("nan")])) == "n/a"
    assert format_mean_std(None, missing="–") == "–"


def test_save_report_makes_its_folder_writes_json_and_prints_the_table(tmp_path, capsys):
    out = save_report({"runs": {"a": [0.5]}, "when": tmp_path}, tmp_path / "new" / "r.json", "| a | 0.5000 |")
    report = json.loads(out.read_text())
    assert {k: v for k, v in report.items() if k != "conditions"} == {"runs": {"a": [0.5]}, "when": str(tmp_path)}
    assert capsys.readouterr().out.splitlines() == ["| a | 0.5000 |", f"wrote {out}"]


def test_a_report_records_the_commit_and_the_thread_count_its_figures_depend_on(tmp_path, monkeypatch):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        conditions = json.loads(save_report({}, tmp_path / "r.json", "").read_text())["conditions"]
    finally:
        torch.set_num_threads(threads)
    assert conditions["threads"] == 1 and conditions["torch"] == torch.__version__
    repo = Path(__file__).resolve().parent.parent
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True)
    if head.returncode == 0:  # a checkout (CI's clean clone): the commit and whether tracked files differ
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, check=True).stdout.strip() != ""
        assert (conditions["commit"], conditions["uncommitted_changes"]) == (head.stdout.strip(), dirty)
    else:
        assert (conditions["commit"], conditions["uncommitted_changes"]) == (None, None)
    # outside a checkout git has no answer, and the report says so instead of failing
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "not_a_repo"))
    assert {k: run_conditions()[k] for k in ("commit", "uncommitted_changes")} == {
        "commit": None, "uncommitted_changes": None}


def _fake_train(cfg, run_date, model_name, *, contrastive, seed, **_):
    """Deterministic metrics: cl adds +0.1 at K=1 shrinking to +0.01 at K=20; sasrec > bert4rec."""
    base = {"sasrec": 0.3, "bert4rec": 0.2}[model_name]
    bonus = {"none": 0.0, "encoder": 0.5, "item": 1.0}[contrastive]
    gain = {1: 0.1, 5: 0.05, 10: 0.02, 20: 0.01}
    test = {}
    for k, g in gain.items():
        test[f"hr@{k}"] = base + 0.01 * k + bonus * g + 0.001 * seed
        test[f"ndcg@{k}"] = test[f"hr@{k}"] / 2
    test["skip_mrr"] = 0.05 - 0.01 * bonus
    return {"run_id": f"{model_name}-{contrastive}-{seed}", "best_epoch": seed + 1, "stopped_early": False,
            "valid": test, "test": test}


def test_aggregate_and_claims_on_a_fake_grid():
    runs = run_grid(None, None, "toy", seeds=[0, 1, 2], train_fn=_fake_train, log=lambda _: None)
    assert len(runs) == 15
    summary = aggregate(runs)
    cell = summary["sasrec+cl_item"]["hr@1"]
    assert cell["mean"] == pytest.approx(0.3 + 0.01 + 0.1 + 0.001)
    assert cell["std"] == pytest.approx(0.001)  # seeds 0,1,2 -> +0, +0.001, +0.002 -> sample std 0.001
    assert summary["sasrec"]["best_epoch"]["mean"] == pytest.approx(2.0)
    claims = check_claims(summary)
    assert claims["sasrec+cl_item vs sasrec"]["helps"] and claims["sasrec+cl_item vs sasrec"]["largest_at_small_k"]
    assert claims["sasrec+cl_item vs sasrec"]["skip_mrr_lower"]
    assert claims["sasrec vs bert4rec"]["holds"]
    assert claims["item anchor vs encoder anchor"]["holds"]
    table = markdown_table(summary)
    assert "| sasrec+cl_item | 0.4110 ± 0.0010 |" in table
    assert len(verdicts(claims)) == len(claims)


def test_toy_grid_trains_tracks_and_aggregates(cfg):
    data = toy_data(n_users=24, n_items=15, seed=3)
    small = dict(hidden=16, layers=1, heads=2, max_seq_len=12, batch_size=16, n_sampled=8, epochs=1, patience=1,
                 device="cpu", progress=False)
    runs = run_grid(cfg, data, "toy", seeds=[0, 1], variants=["sasrec", "sasrec+cl_item"], log=lambda _: None, **small)
    assert [(r["variant"], r["seed"]) for r in runs] == [("sasrec", 0), ("sasrec+cl_item", 0), ("sasrec", 1),
                                                         ("sasrec+cl_item", 1)]
    summary = aggregate(runs)
    for variant in ("sasrec", "sasrec+cl_item"):
        values = [r["test"]["ndcg@10"] for r in runs if r["variant"] == variant]
        assert summary[variant]["ndcg@10"]["mean"] == pytest.approx(np.mean(values))
        assert summary[variant]["ndcg@10"]["std"] == pytest.approx(np.std(values, ddof=1))
        assert summary[variant]["ndcg@10"]["n"] == 2
    mlflow.set_tracking_uri(cfg.paths.mlflow_tracking_uri)
    tracked = mlflow.search_runs(experiment_names=["encore"])
    assert set(tracked["run_id"]) == {r["mlflow_run_id"] for r in runs}


def test_finished_seeds_are_reused_only_with_identical_settings(tmp_path):
    import json

    from benchmarks.experiments import reusable_runs

    runs = run_grid(None, None, "toy", seeds=[0, 1], variants=["sasrec", "bert4rec"], train_fn=_fake_train,
                    log=lambda _: None)
    out = tmp_path / "report.json"
    hp, info = {"epochs": 5, "loss": "full_softmax"}, {"dataset": "toy", "sequences": 10}
    out.write_text(json.dumps({"hyper_parameters": hp, "data": info, "runs": runs[:3]}))  # seed 1 half done
    reused = reusable_runs(out, hp, info, ["sasrec", "bert4rec"])
    assert list(reused) == [0] and [r["variant"] for r in reused[0]] == ["sasrec", "bert4rec"]
    assert reusable_runs(out, {**hp, "epochs": 6}, info, ["sasrec", "bert4rec"]) == {}
    assert reusable_runs(tmp_path / "missing.json", hp, info, ["sasrec"]) == {}


def test_nightly_models_configurations_are_settings_train_model_accepts():
    """Each SASRec configuration of ``benchmarks.nightly_models`` is one lever away from the
    nightly's defaults and passes the checks ``train_model`` runs before reading any data."""
    from benchmarks.nightly_models import CONFIGS, SEED_DEFAULTS
    from encore.core.config import load_config
    from training.specs import model_spec

    cfg = load_config(environ={})
    assert CONFIGS["sasrec"] == {}  # the nightly's own settings
    assert CONFIGS["sasrec_seed_defaults"] == SEED_DEFAULTS
    assert all(getattr(cfg.training, key) != value for key, value in SEED_DEFAULTS.items())  # the defaults moved
    # the defaults before attention dropout was dropped, and before the moving average joined them
    assert CONFIGS["sasrec_attention_dropout"] == {"ema_epochs": 6, "attention_dropout": 0.2} != {
        "ema_epochs": cfg.training.ema_epochs, "attention_dropout": cfg.training.attention_dropout}
    assert CONFIGS["sasrec_no_ema"] == {"ema_epochs": 0, "attention_dropout": 0.2}
    for name, settings in CONFIGS.items():
        model_spec("sasrec").check(cfg, settings)


def test_epoch_profile_shows_the_dropout_masks_attention_dropout_adds(cfg):
    """Per training step SASRec draws one dropout mask for its input and one for each block's
    attention and feed-forward outputs (1 + 2 x 2 layers = 5); attention dropout adds one per
    layer for the attention probabilities (7)."""
    from benchmarks.epoch_profile import markdown, profile_configuration

    data = toy_data(n_users=24, n_items=15, seed=3)
    for key, value in dict(hidden=16, heads=2, layers=2, max_seq_len=12, batch_size=16, device="cpu").items():
        setattr(cfg.training, key, value)
    rows = {name: profile_configuration(cfg, "2026-10-30", data, name, epochs=1, top=1000)
            for name in ("sasrec", "sasrec_attention_dropout")}
    masks = {name: next(o["calls"] for o in row["top_operators"] if o["operator"] == "aten::bernoulli_")
             for name, row in rows.items()}
    steps = rows["sasrec"]["steps_per_epoch"]
    assert steps == -(-rows["sasrec"]["train_windows"] // 16) >= 2
    assert masks == {"sasrec": 5 * steps, "sasrec_attention_dropout": 7 * steps}
    for row in rows.values():
        assert len(row["epoch_seconds"]) == 1
        shares = [o["share"] for o in row["top_operators"]]
        assert shares == sorted(shares, reverse=True) and sum(shares) == pytest.approx(1, abs=0.01)
    table = markdown({"configs": rows})
    assert f"| aten::bernoulli_ | {7 * steps} |" in table
