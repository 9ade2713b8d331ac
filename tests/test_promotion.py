"""Promotion gate: aliases in a real (sqlite) MLflow registry, decisions on the same metrics."""

import pytest
from mlflow import MlflowClient

from encore.core import lake
from training.promotion import current_champion, decide, promote


def test_decide_rules():
    assert decide({"ndcg@10": 0.2}, None, "ndcg@10", 0.0, "skip_mrr")[0] is True
    ok, reason = decide({"ndcg@10": 0.30, "skip_mrr": 0.05}, {"ndcg@10": 0.25, "skip_mrr": 0.06}, "ndcg@10", 0.01, "skip_mrr")
    assert ok and "+0.0500" in reason
    ok, reason = decide({"ndcg@10": 0.255}, {"ndcg@10": 0.25}, "ndcg@10", 0.01, "skip_mrr")
    assert not ok and "below margin" in reason
    ok, reason = decide({"ndcg@10": 0.24}, {"ndcg@10": 0.25}, "ndcg@10", 0.0, "skip_mrr")
    assert not ok
    ok, reason = decide({"ndcg@10": 0.30, "skip_mrr": 0.09}, {"ndcg@10": 0.25, "skip_mrr": 0.06}, "ndcg@10", 0.0, "skip_mrr")
    assert not ok and "skip_mrr got worse" in reason
    with pytest.raises(KeyError, match="ndcg@10"):
        decide({"hr@10": 1.0}, None, "ndcg@10", 0.0, "skip_mrr")


@pytest.fixture
def registry(cfg):
    client = MlflowClient(cfg.paths.mlflow_tracking_uri)
    name = cfg.promotion.registered_model
    client.create_registered_model(name)
    for _ in range(3):
        client.create_model_version(name, source=str(cfg.home / "artifacts" / "model"))
    return client


def test_first_model_becomes_champion_and_worse_challenger_is_not_promoted(cfg, registry):
    quality = {"1": {"ndcg@10": 0.20, "skip_mrr": 0.05}, "2": {"ndcg@10": 0.15, "skip_mrr": 0.05},
               "3": {"ndcg@10": 0.30, "skip_mrr": 0.04}}
    evaluated = []

    def evaluate(version):
        evaluated.append(version)
        return quality[version]

    first = promote(cfg, "2026-10-28", "1", evaluate, registry)
    assert first.promoted and first.champion_version is None
    worse = promote(cfg, "2026-10-29", "2", evaluate, registry)
    assert not worse.promoted and "below margin" in worse.reason
    assert current_champion(registry, cfg.promotion.registered_model) == "1"
    assert registry.get_model_version_by_alias(cfg.promotion.registered_model, "challenger").version in ("2", 2)
    better = promote(cfg, "2026-10-30", "3", evaluate, registry)
    assert better.promoted and better.champion_version == "1"
    assert current_champion(registry, cfg.promotion.registered_model) == "3"
    assert evaluated == ["1", "2", "1", "3", "1"]  # champion re-evaluated on each night's data
    history = lake.read_table(cfg, "promotions").to_pylist()
    assert [(h["run_date"], h["promoted"]) for h in history] == [
        ("2026-10-28", True), ("2026-10-29", False), ("2026-10-30", True)]


def test_rerun_reuses_the_recorded_decision(cfg, registry):
    from training.promotion import champion_for_date

    quality = {"1": {"ndcg@10": 0.2}, "2": {"ndcg@10": 0.3}, "3": {"ndcg@10": 0.9}}
    promote(cfg, "2026-10-28", "1", quality.get, registry)
    promote(cfg, "2026-10-29", "2", quality.get, registry)
    assert champion_for_date(cfg, "2026-10-28") == "1"
    assert champion_for_date(cfg, "2026-10-29") == "2"
    again = promote(cfg, "2026-10-28", "3", quality.get, registry)  # re-run of an old night
    assert again.challenger_version == "1" and again.promoted
    assert current_champion(registry, cfg.promotion.registered_model) == "2"
    assert champion_for_date(cfg, "2026-10-28") == "1"
