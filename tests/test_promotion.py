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


# ---- the sanity floor (issue #22: a diverged model must never be published) ----------


def test_nan_challenger_is_never_promoted():
    nan = float("nan")
    ok, reason = decide({"ndcg@10": nan, "skip_mrr": nan}, {"ndcg@10": .157, "skip_mrr": .05}, "ndcg@10", 0, "skip_mrr")
    assert not ok and "ndcg@10 is nan" in reason
    ok, reason = decide({"ndcg@10": nan}, None, "ndcg@10", 0, "skip_mrr")
    assert not ok and "sanity floor" in reason


def test_constant_or_nonfinite_scores_are_rejected_even_on_the_first_night():
    flat = {"ndcg@10": 0.3, "score_std_median": 0.0, "score_nonfinite_share": 0.0}
    ok, reason = decide(flat, None, "ndcg@10", 0, "skip_mrr")
    assert not ok and "constant per user" in reason
    broken = {"ndcg@10": 0.3, "score_std_median": 0.5, "score_nonfinite_share": 0.25}
    ok, reason = decide(broken, None, "ndcg@10", 0, "skip_mrr")
    assert not ok and "25.0% of its scores are not finite" in reason


def test_challenger_far_below_popularity_is_rejected():
    weak = {"ndcg@10": 0.04, "score_std_median": 0.1}
    ok, reason = decide(weak, None, "ndcg@10", 0, "skip_mrr", popularity=0.10, popularity_floor=0.5)
    assert not ok and "below 0.5 x the most-popular baseline's 0.1000" in reason
    ok, _ = decide({"ndcg@10": 0.06, "score_std_median": 0.1}, None, "ndcg@10", 0, "skip_mrr", popularity=0.10)
    assert ok


def test_nan_guard_counts_as_worse():
    ok, reason = decide({"ndcg@10": 0.3, "skip_mrr": float("nan")}, {"ndcg@10": 0.2, "skip_mrr": 0.05},
                        "ndcg@10", 0, "skip_mrr")
    assert not ok and "skip_mrr got worse" in reason


def test_a_constant_scorer_evaluates_to_the_floor_not_to_a_perfect_score():
    """What LR=1.0 produced: every score equal. Ranked pessimistically it scores ~0 and
    its score health shows the collapse."""
    import torch
    from toy_data import toy_sequence_table

    from training.data import SequenceData
    from training.evaluation import evaluate_model
    from training.promotion import sanity_problems

    class Constant:
        def score_all(self, seqs, context=None):
            return torch.zeros(seqs.shape[0], data.n_items)

    data = SequenceData.from_arrow(toy_sequence_table(n_users=30, n_items=25, seed=3))
    metrics = evaluate_model(Constant(), data.split("valid", 10), data.n_items, exclude="none")
    assert metrics["ndcg@10"] == 0.0 and metrics["score_std_median"] == 0.0
    assert "constant per user" in " ".join(sanity_problems(metrics, "ndcg@10"))


def test_night_without_a_sane_model_publishes_nothing_and_says_why(cfg):
    from training.promotion import champion_for_date, record_no_challenger

    decision = record_no_challenger(cfg, "2026-10-28", {"sasrec": "ndcg@10 is nan"})
    assert not decision.promoted and decision.challenger_version is None
    with pytest.raises(LookupError, match="sasrec: ndcg@10 is nan.*no champion yet"):
        champion_for_date(cfg, "2026-10-28")


def test_broken_challenger_keeps_the_champion_serving(cfg, registry):
    from training.promotion import champion_for_date, record_no_challenger

    promote(cfg, "2026-10-28", "1", {"1": {"ndcg@10": 0.2, "score_std_median": 0.1}}.get, registry)
    record_no_challenger(cfg, "2026-10-29", {"sasrec": "its scores are constant per user"}, registry)
    assert champion_for_date(cfg, "2026-10-29") == "1"
    assert current_champion(registry, cfg.promotion.registered_model) == "1"
