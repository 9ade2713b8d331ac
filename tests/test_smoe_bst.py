"""S-MoE-BST (seed 003): gate, regulariser, next-K soft labels, engagement weights,
PHNS sampler, multi-task losses, over-fitting and the tracked training run."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from training.data import SequenceData
from training.losses import (
    MultiTaskSettings,
    completion_loss,
    ctr_position_mask,
    engagement_weights,
    gate_entropy,
    next_k_targets,
    smoe_bst_loss,
    weighted_ctr_loss,
    weighted_ranking_loss,
)
from training.models import build_model
from training.models.smoe_bst import PairHead
from training.multitask import MultiTaskObjective
from training.phns import PhnsPools, PhnsSampler, pool_composition
from toy_data import toy_sequence_table
from training.trainer import Trainer, TrainSettings, seed_everything

SMALL = dict(hidden=32, layers=1, heads=2, dropout=0.0, max_seq_len=16)


@pytest.fixture(scope="module")
def toy() -> SequenceData:
    return SequenceData.from_arrow(toy_sequence_table(n_users=48, n_items=20, skip_rate=0.25, seed=1))


def small_model(data: SequenceData, **kw):
    seed_everything(0)
    return build_model("smoe_bst", data.n_items, **{**SMALL, **kw}).attach_users(data.user_ids)


# ---- model -------------------------------------------------------------------------


def test_gate_is_a_distribution_and_noise_only_in_training(toy):
    model = small_model(toy, gate_noise=1.0)
    batch = toy.split("test", 16).take(slice(0, 8))
    model.eval()
    first = model.score_all(batch.seq, context=batch)
    gate = model.last_gate
    assert gate.shape == (8, 16, 3)
    assert torch.allclose(gate.sum(-1), torch.ones(8, 16), atol=1e-6)
    assert torch.equal(first, model.score_all(batch.seq, context=batch))  # eval: no noise, deterministic
    model.train()
    model.encode(batch.seq, batch)
    noisy = model.last_gate
    model.encode(batch.seq, batch)
    assert not torch.allclose(noisy, model.last_gate)


def test_context_and_windows_change_the_representation(toy):
    model = small_model(toy).eval()
    batch = toy.split("test", 16).take(slice(0, 4))
    with_context = model.score_all(batch.seq, context=batch)
    assert not torch.allclose(with_context, model.score_all(batch.seq))  # skips / completion are read
    # the short expert (last 5 events) ignores older events, the long one does not
    hidden = model.encoder(model.event_embeddings(batch.seq, batch), key_valid=batch.seq != 0, causal=True)
    altered = hidden.clone()
    altered[:, :8] += 1.0
    short, long = model.experts[0], model.experts[2]
    valid = batch.seq != 0
    assert torch.allclose(short(hidden, valid)[:, -1], short(altered, valid)[:, -1], atol=1e-6)
    assert not torch.allclose(long(hidden, valid)[:, -1], long(altered, valid)[:, -1], atol=1e-4)


def test_entropy_regulariser_prevents_expert_collapse(toy):
    def final_entropy(entropy_weight: float) -> float:
        model = small_model(toy, gate_noise=0.0)
        with torch.no_grad():
            model.gate[-1].bias.copy_(torch.tensor([4.0, 0.0, 0.0]))  # the short expert starts out winning
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        batch = toy.split("train", 16).take(slice(0, 16))
        negatives = torch.randint(1, toy.n_items + 1, (len(batch), 8), generator=torch.Generator().manual_seed(0))
        settings = MultiTaskSettings(entropy_weight=entropy_weight)
        for _ in range(10):
            parts = smoe_bst_loss(model, batch, negatives, settings)
            optimizer.zero_grad()
            parts["loss"].backward()
            optimizer.step()
        with torch.no_grad():
            return float(smoe_bst_loss(model, batch, negatives, settings)["gate_entropy"])

    without, with_regulariser = final_entropy(0.0), final_entropy(1.0)
    assert with_regulariser > without + 0.2
    assert with_regulariser > 0.8 * math.log(3)


# ---- targets, weights, losses ---------------------------------------------------


def test_next_k_targets_and_engagement_weights_by_hand():
    # window: pad, a(1), b(2, skipped), c(3), d(4), e(5)
    seq = torch.tensor([[0, 1, 2, 3, 4, 5]])
    skip = torch.tensor([[False, False, True, False, False, False]])
    completion = torch.tensor([[0.0, 0.9, 0.02, 0.5, 1.0, 0.25]])
    items, comp = next_k_targets(seq, skip, completion, k=3)
    assert items[0].tolist() == [[0, 0, 0], [3, 4, 5], [3, 4, 5], [4, 5, 0], [5, 0, 0], [0, 0, 0]]
    assert torch.allclose(comp[0, 1], torch.tensor([0.5, 1.0, 0.25]))
    weights = engagement_weights(comp[0, 1], alpha=1.0)
    assert torch.allclose(weights, torch.tensor([1.5, 2.0, 1.25]))
    strengths = torch.tensor([1.0, 0.6, 0.3])
    assert torch.allclose(strengths * weights, torch.tensor([1.5, 1.2, 0.375]))  # ranking-loss weights


def test_head_losses_match_hand_computation():
    # ranking: s+ = 2, negatives 1 and 0 (a third one masked); weights 1 and 3
    positive = torch.tensor([2.0, 0.0])
    negative = torch.tensor([[1.0, 0.0, 9.0], [0.0, 0.0, 0.0]])
    valid = torch.tensor([[True, True, False], [True, False, False]])
    weights = torch.tensor([1.0, 3.0])
    loss_1 = -math.log(math.exp(2) / (math.exp(2) + math.exp(1) + 1))
    loss_2 = math.log(2)
    expected = (1 * loss_1 + 3 * loss_2) / 4
    assert weighted_ranking_loss(positive, negative, valid, weights).item() == pytest.approx(expected, rel=1e-6)

    # CTR: positive logit 0 with soft label 0.6 (weight 2) and logit ln 3 with label 1 (weight 1);
    # negatives: logit 0 and ln 3 (the third masked)
    def bce(p, y):
        return -(y * math.log(p) + (1 - y) * math.log(1 - p))

    logits = torch.tensor([0.0, math.log(3)])
    ctr = weighted_ctr_loss(logits, torch.tensor([0.6, 1.0]), torch.tensor([2.0, 1.0]),
                            torch.tensor([[0.0, math.log(3), 5.0]]), torch.tensor([[True, True, False]]))
    positive_term = (2 * bce(0.5, 0.6) + 1 * bce(0.75, 1.0)) / 3
    negative_term = (bce(0.5, 0.0) + bce(0.75, 0.0)) / 2
    assert ctr.item() == pytest.approx(0.5 * (positive_term + negative_term), rel=1e-6)

    # completion: sigmoid(0) = 0.5 vs 0.1 and sigmoid(ln 3) = 0.75 vs 0.75
    assert completion_loss(logits, torch.tensor([0.1, 0.75])).item() == pytest.approx((0.4**2 + 0) / 2, rel=1e-6)
    assert gate_entropy(torch.tensor([[0.25, 0.25, 0.5], [1.0, 0.0, 0.0]])).item() == pytest.approx(
        (1.5 * math.log(2)) / 2, rel=1e-6)


def test_pair_head_blocks_equal_the_mlp_on_the_concatenation():
    torch.manual_seed(0)
    head, table = PairHead(8), torch.randn(10, 8)
    users, ids = torch.randn(4, 3, 8), torch.randint(0, 10, (4, 3, 5))
    items = table[ids]
    u = users[..., None, :].expand_as(items)
    expected = head.mlp(torch.cat([u, items, u * items], dim=-1)).squeeze(-1)
    assert torch.allclose(head(users, table, ids), expected, atol=1e-6)


def test_ctr_positions_are_drawn_among_positions_with_a_target():
    has = torch.tensor([[False, True, True, True, True, True], [True, False, False, False, False, True]])
    torch.manual_seed(0)
    chosen = ctr_position_mask(has, 2)
    assert chosen.sum(dim=1).tolist() == [2, 2] and not (chosen & ~has).any()
    assert chosen[1].tolist() == has[1].tolist()  # a row with only 2 candidates keeps both
    assert torch.equal(ctr_position_mask(has, 0), has)  # 0 = every position
    draws = torch.stack([ctr_position_mask(has, 1)[0] for _ in range(2000)]).float().mean(0)
    assert draws[0] == 0 and torch.allclose(draws[1:], torch.full((5,), 0.2), atol=0.03)  # uniform over 5


# ---- PHNS sampler ---------------------------------------------------------------


def _sampler_data() -> tuple[SequenceData, PhnsPools]:
    """Two users over 200 items; pools of 60 each; user 0's hard pool also lists two
    of its positives (must never be drawn)."""
    items = [f"i{i:03d}" for i in range(200)]
    rows = [
        {"user_id": "u0", "item_ids": ["i000", "i001", "i002", "i003", "i004"], "is_skip": [False, True, False, False, False],
         "completion": [1.0, 0.0, 1.0, 1.0, 1.0], "valid_idx": 3, "test_idx": 4},
        {"user_id": "u1", "item_ids": ["i005", "i006", "i007"], "is_skip": [False, False, False],
         "completion": [1.0, 1.0, 1.0], "valid_idx": 1, "test_idx": 2},
    ]
    table = pa.Table.from_pylist(rows)
    from training.data import ItemVocab

    data = SequenceData.from_arrow(table, vocab=ItemVocab(items))
    pool_rows = []
    for user in ("u0", "u1"):
        hard = [f"i{i:03d}" for i in range(10, 70)] + (["i000", "i002"] if user == "u0" else [])
        for pool, names in (("hard", hard), ("trending", [f"i{i:03d}" for i in range(70, 130)]),
                            ("tailing", [f"i{i:03d}" for i in range(130, 190)])):
            pool_rows += [{"user_id": user, "pool": pool, "item_id": n, "pool_rank": r + 1} for r, n in enumerate(names)]
    return data, PhnsPools.from_arrow(pa.Table.from_pylist(pool_rows), data)


@pytest.mark.parametrize("share,expected", [(0.5, (10, 5, 5)), (0.3, (6, 7, 7)), (0.2, (4, 8, 8))])
def test_sampler_respects_mix_and_never_returns_a_positive(share, expected):
    data, pools = _sampler_data()
    sampler = PhnsSampler(pools, share, n_negatives=20, seed=3)
    positives = {0: {1, 3, 4, 5}, 1: {6, 7, 8}}  # ids of i000, i002, i003, i004 / i005..i007
    for epoch in range(30):
        drawn = sampler.sample(epoch)
        for user in (0, 1):
            ids = drawn[user].tolist()
            assert len(set(ids)) == 20 and not set(ids) & positives[user]
            hard = sum(i in set(pools.pools["hard"][user].tolist()) for i in ids)
            trending = sum(i in set(pools.pools["trending"][user].tolist()) for i in ids)
            assert (hard, trending, 20 - hard - trending) == expected
    assert not torch.equal(sampler.sample(0), sampler.sample(1))  # re-drawn every epoch
    assert torch.equal(sampler.sample(4), sampler.sample(4))


def test_uniform_share_reserves_negatives_for_unseen_catalogue_items():
    data, pools = _sampler_data()
    # 20 negatives, half uniform: the MEDIUM mix gets 10 (3 hard, 4 trending, 3 tailing), 10 are uniform
    sampler = PhnsSampler(pools, 0.3, n_negatives=20, seed=3, uniform_share=0.5)
    seen = {0: set(data.items[0:5].tolist()), 1: set(data.items[5:8].tolist())}
    outside_pools = set()
    for epoch in range(30):
        drawn = sampler.sample(epoch)
        for user in (0, 1):
            ids = drawn[user].tolist()
            phns, uniform = ids[:10], ids[10:]
            assert len(set(ids)) == 20
            hard = sum(i in set(pools.pools["hard"][user].tolist()) for i in phns)
            trending = sum(i in set(pools.pools["trending"][user].tolist()) for i in phns)
            assert (hard, trending, 10 - hard - trending) == (3, 4, 3)
            assert not set(uniform) & seen[user]
            outside_pools |= {i for i in uniform if not any(i in set(p[user].tolist()) for p in pools.pools.values())}
    # items in no pool (i190..i199, unseen ones below i010) are reachable only through the uniform share
    assert len(outside_pools) >= 10
    with pytest.raises(ValueError, match="uniform_share"):
        PhnsSampler(pools, 0.3, 20, seed=0, uniform_share=1.5)


def test_short_pools_and_uniform_mix():
    data, pools = _sampler_data()
    pools.pools["hard"][1] = pools.pools["hard"][1][:3]
    drawn = PhnsSampler(pools, 0.5, 20, seed=0).sample(0)
    composition = pool_composition(pools, drawn[1:], np.array([1]))
    assert composition["hard"] == pytest.approx(3 / 20) and composition["other"] == 0.0  # filled from trending/tailing
    uniform = PhnsSampler(pools, None, 50, seed=0).sample(0)
    seen = {0: set(data.items[0:5].tolist()), 1: set(data.items[5:8].tolist())}
    for user in (0, 1):
        assert len(set(uniform[user].tolist())) == 50 and not set(uniform[user].tolist()) & seen[user]
    shares = pool_composition(pools, PhnsSampler(pools, None, 100, seed=1).sample(0), np.array([0, 1]))
    # uniform over the ~195 unseen items: about 60 + 3 of them hard, 12 in no pool
    assert 0.1 < shares["hard"] < 0.25 and shares["other"] > 0.02


def test_pools_from_sequences_match_their_definition():
    table = toy_sequence_table(n_users=16, n_items=12, skip_rate=0.4, seed=2)
    data = SequenceData.from_arrow(table)
    pools = PhnsPools.from_sequences(data, pool_size=4, min_support=1)
    for user in range(data.n_users):
        events = data.items[data.offsets[user] : data.offsets[user + 1]]
        skipped = data.is_skip[data.offsets[user] : data.offsets[user + 1]]
        assert set(pools.pools["hard"][user].tolist()) == set(events[skipped].tolist()) - set(events[~skipped].tolist())
        for name in ("trending", "tailing"):
            assert not set(pools.pools[name][user].tolist()) & set(events.tolist())


# ---- training -------------------------------------------------------------------


def test_tiny_dataset_overfits_with_the_multitask_objective():
    clean = SequenceData.from_arrow(toy_sequence_table(n_users=32, n_items=20, skip_rate=0.0, seed=1))
    model = small_model(clean, gate_noise=0.5)
    pools = PhnsPools.from_sequences(clean, pool_size=10, min_support=1)
    objective = MultiTaskObjective(PhnsSampler(pools, 0.3, 10, seed=0), MultiTaskSettings(), ("short", "mid", "long"), "MEDIUM")
    settings = TrainSettings(epochs=15, batch_size=16, lr=1e-2, max_seq_len=16, patience=50, seed=5, device="cpu",
                             progress=False)
    result = Trainer(model, clean, settings, objective=objective).fit()
    losses = [row["rank_loss"] for row in result.history]
    assert losses[-1] < 0.3 * losses[0]
    assert result.best_valid["hr@1"] >= 0.9
    gate_means = [result.history[-1][f"gate_mean_expert_{n}"] for n in ("short", "mid", "long")]
    assert sum(gate_means) == pytest.approx(1.0, abs=1e-5)


def user_features_table(run_date: str, users: list[str]) -> pa.Table:
    """user_features mart rows: user k has plays_short = k, skip_rate_short = 0.1 k, the rest 0 or null."""
    from training.user_features import USER_FEATURE_COLUMNS

    columns = {"run_date": pa.array([run_date] * len(users)).cast(pa.date32()), "user_id": pa.array(users)}
    for name in USER_FEATURE_COLUMNS:
        columns[name] = pa.array([None] * len(users), pa.float64())
    columns["plays_short"] = pa.array(range(len(users)), pa.int64())
    columns["skip_rate_short"] = pa.array([0.1 * k for k in range(len(users))])
    return pa.table(columns)


def test_user_feature_matrix_transforms_a_hand_example():
    from training.user_features import USER_FEATURE_COLUMNS, user_feature_matrix

    table = user_features_table("2026-10-30", ["a", "b", "c"])
    out = user_feature_matrix(table, np.array(["c", "zz", "a"], dtype=object))
    plays, skip = USER_FEATURE_COLUMNS.index("plays_short"), USER_FEATURE_COLUMNS.index("skip_rate_short")
    assert out.shape == (3, len(USER_FEATURE_COLUMNS))
    assert out[0, plays] == pytest.approx(math.log1p(2)) and out[0, skip] == pytest.approx(0.2)  # c: log1p count, share
    assert not out[1].any()  # a user the mart does not know: zeros
    assert not out[2].any()  # a: plays 0 -> log1p 0, share 0, nulls -> 0
    with pytest.raises(ValueError, match="abandon_rate_long"):
        user_feature_matrix(table.drop_columns(["abandon_rate_long"]), np.array(["a"]))


def test_user_features_need_the_mart_of_the_run_date(cfg, toy):
    from training.user_features import load_user_features

    with pytest.raises(FileNotFoundError, match="user_features"):
        load_user_features(cfg, "2026-10-30", toy.user_ids)


def test_train_model_tracks_gates_and_phns_sets(cfg, toy):
    import duckdb
    from mlflow import MlflowClient

    from training.inference import load_model_for_inference, recommend_for_users
    from training.train import train_model
    from training.user_features import USER_FEATURE_COLUMNS

    Path(cfg.paths.warehouse).parent.mkdir(parents=True, exist_ok=True)
    features = user_features_table("2026-10-30", list(toy.user_ids))
    with duckdb.connect(cfg.paths.warehouse) as con:
        con.execute("CREATE TABLE user_features AS SELECT * FROM features")
    out = train_model(cfg, "2026-10-30", "smoe_bst", data=toy, dataset="toy", epochs=2, phns_mix="hard",
                      progress=False, **{k: v for k, v in SMALL.items() if k != "max_seq_len"}, max_seq_len=16)
    assert out["model_name"] == "smoe_bst+phns_hard"
    rows = pq.read_table(out["model_runs_path"]).to_pandas()
    assert set(rows["split"]) == {"valid", "test", "phns_hard", "easy"}
    gates = rows[rows["metric"].str.startswith("gate_mean_")]
    assert sorted(gates["metric"]) == ["gate_mean_expert_long", "gate_mean_expert_mid", "gate_mean_expert_short"]
    assert gates["value"].sum() == pytest.approx(1.0, abs=1e-5)
    assert set(rows[rows.split == "phns_hard"]["metric"]) == {"ndcg@1", "ndcg@5", "recall@5", "mrr@5", "n_users"}

    client = MlflowClient(cfg.paths.mlflow_tracking_uri)
    run = client.get_run(out["run_id"])
    assert run.data.params["phns_mix"] == "HARD"
    for metric in ("rank_loss", "ctr_loss", "completion_loss", "gate_entropy", "gate_mean_expert_short"):
        assert [m.step for m in client.get_metric_history(out["run_id"], metric)] == [1, 2]

    bundle = load_model_for_inference(cfg, f"models:/{cfg.promotion.registered_model}/{out['model_version']}", device="cpu")
    assert bundle.model.config.n_user_features == len(USER_FEATURE_COLUMNS)
    with pytest.raises(ValueError, match="user features"):
        recommend_for_users(bundle, toy, k=3)
    recs = recommend_for_users(bundle, toy, k=3, cfg=cfg, run_date="2026-10-30")
    assert recs.num_rows == 3 * toy.n_users
    plays = USER_FEATURE_COLUMNS.index("plays_short")
    assert bundle.model.user_features_of[:, plays].tolist() == pytest.approx([math.log1p(k) for k in range(toy.n_users)])
    batch = toy.split("inference", 16).take(slice(0, 4))
    ids = torch.tensor([[1, 2, 3]] * 4)
    soft, completion = bundle.model.predict_soft_label_and_completion(batch, ids)
    assert soft.shape == completion.shape == (4, 3)
    assert bool(((soft >= 0) & (soft <= 1) & (completion >= 0) & (completion <= 1)).all())
