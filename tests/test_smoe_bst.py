"""S-MoE-BST (seed 003): gate, regulariser, next-K soft labels, engagement weights,
multi-task losses, the marts' PHNS negatives and evaluation sets, over-fitting and the
tracked training run."""

from __future__ import annotations

import datetime as dt
import math

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
    smoe_bst_loss,
    weighted_ctr_loss,
    weighted_ranking_loss,
)
from training.models import build_model
from training.models.smoe_bst import PairHead
from training.multitask import MultiTaskObjective
from training.negatives import MixNegatives, candidates_from_arrow, negatives_from_arrow
from toy_data import toy_data, toy_sequence_table, toy_training_examples, write_toy_marts
from training.trainer import Trainer, TrainSettings, seed_everything

SMALL = dict(hidden=32, layers=1, heads=2, dropout=0.0, max_seq_len=16)


@pytest.fixture(scope="module")
def toy() -> SequenceData:
    return toy_data(n_users=48, n_items=20, skip_rate=0.25, seed=1)


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


def test_sampling_correction_lowers_each_negative_logit_by_its_offset(toy):
    # next positive only, no engagement weights: the ranking loss is the mean over positions with a
    # target of log(exp(s+) + sum_m exp(s_m - o_m)) - s+, recomputed here position by position
    model = small_model(toy, gate_noise=0.0).eval()
    batch = toy.split("train", 16).take(slice(0, 4))
    negatives = torch.randint(1, toy.n_items + 1, (4, 6), generator=torch.Generator().manual_seed(3))
    offsets = torch.log(torch.tensor([4.0, 0.5, 1.0, 2.0, 1.0, 1.0])).expand(4, 6)  # log(oversampling)
    settings = MultiTaskSettings(next_k=1, engagement_alpha=0.0)
    with torch.no_grad():
        vectors = model.predict_vectors(model.encode(batch.seq, batch))
        table = model.item_embeddings()
        expected = []
        for row, position in (batch.next_k[..., 0] != 0).nonzero().tolist():
            v = vectors[row, position]
            target = int(batch.next_k[row, position, 0])
            scores = [float(v @ table[target])] + [float(v @ table[int(item)]) - float(o)
                                                   for item, o in zip(negatives[row], offsets[row]) if item != target]
            expected.append(math.log(sum(math.exp(x) for x in scores)) - scores[0])
        corrected = smoe_bst_loss(model, batch, negatives, settings, offsets)["rank_loss"]
        plain = smoe_bst_loss(model, batch, negatives, settings)["rank_loss"]
        zero = smoe_bst_loss(model, batch, negatives, settings, torch.zeros(4, 6))["rank_loss"]
    assert corrected.item() == pytest.approx(sum(expected) / len(expected), rel=1e-5)
    assert zero.item() == pytest.approx(plain.item(), rel=1e-6) and corrected.item() != pytest.approx(plain.item())


# ---- targets, weights, losses ---------------------------------------------------


def test_next_k_targets_and_engagement_weights_by_hand():
    # one user: a, b (skipped), c, d, e, f; valid = e, test = f -> the train window is a b c d
    table = pa.Table.from_pylist([{
        "user_id": "u", "item_ids": list("abcdef"), "is_skip": [False, True, False, False, False, False],
        "completion": [0.9, 0.02, 0.5, 1.0, 0.25, 1.0], "valid_idx": 4, "test_idx": 5}])
    data = SequenceData.from_arrow(table, toy_training_examples(table))
    train = data.split("train", 6)
    a, b, c, d = 1, 2, 3, 4
    # next K positives inside the window, never the valid target e: a -> c d, b -> c d, c -> d
    # (K = 2: no position has three next positives of its split)
    assert train.next_k[0].tolist() == [[0, 0], [0, 0], [c, d], [c, d], [d, 0], [0, 0]]
    assert train.next_k_label[0, 2].tolist() == pytest.approx([1.0, 0.6])
    assert torch.allclose(train.next_k_completion[0, 2, :2], torch.tensor([0.5, 1.0]))
    comp = torch.tensor([0.5, 1.0, 0.25])
    weights = engagement_weights(comp, alpha=1.0)
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


# ---- PHNS negatives and evaluation sets from the marts ------------------------------


def test_mart_negatives_align_with_users_and_draws():
    data = toy_data(n_users=3, n_items=10, seed=0)
    users = list(data.user_ids)
    rows = pa.Table.from_pylist([
        {"user_id": users[2], "draw": 0, "negative_item_ids": ["i001", "i002"], "negative_oversampling": [4.0, 0.5]},
        {"user_id": users[2], "draw": 1, "negative_item_ids": ["i003"], "negative_oversampling": [None]},  # old lake
        {"user_id": users[0], "draw": 0, "negative_item_ids": ["i004", "nope"],  # unknown item -> 0
         "negative_oversampling": [2.0, 8.0]},
        {"user_id": "stranger", "draw": 0, "negative_item_ids": ["i005"], "negative_oversampling": [3.0]},
    ])
    negatives = negatives_from_arrow(rows, data)
    enc = lambda item: int(data.vocab.encode([item])[0])  # noqa: E731
    assert negatives.item_ids.shape == negatives.oversampling.shape == (3, 2, 2)
    assert negatives.item_ids[2].tolist() == [[enc("i001"), enc("i002")], [enc("i003"), 0]]
    assert negatives.item_ids[0, 0].tolist() == [enc("i004"), 0] and not negatives.item_ids[1].any()
    # aligned with the ids; 1 where there is no negative, an unknown item or no value
    assert negatives.oversampling[2].tolist() == [[4.0, 0.5], [1.0, 1.0]]
    assert negatives.oversampling[0, 0].tolist() == [2.0, 1.0] and (negatives.oversampling[1] == 1).all()
    objective = MultiTaskObjective(negatives, MultiTaskSettings(), ("short",), "MEDIUM")
    assert not objective.offsets.any()  # no correction by default
    objective.start_epoch(2)
    assert objective.negatives[2].tolist() == [enc("i003"), 0]  # epoch 2 uses draw 1
    objective.start_epoch(3)
    assert objective.negatives[2].tolist() == [enc("i001"), enc("i002")]  # and epoch 3 draw 0 again
    corrected = MultiTaskObjective(negatives, MultiTaskSettings(phns_sampling_correction=0.5), ("short",), "HARD")
    assert corrected.offsets[2].tolist() == pytest.approx([0.5 * math.log(4.0), 0.5 * math.log(0.5)])
    # a mart row built before the column existed holds a null list (on_schema_change: append_new_columns)
    appended = negatives_from_arrow(rows.set_column(
        rows.column_names.index("negative_oversampling"), "negative_oversampling",
        pa.array([None, [None], [2.0, 8.0], [3.0]], pa.list_(pa.float64()))), data)
    assert torch.equal(appended.item_ids, negatives.item_ids)
    assert appended.oversampling[2].tolist() == [[1.0, 1.0], [1.0, 1.0]]
    assert appended.oversampling[0, 0].tolist() == [2.0, 1.0]
    misaligned = rows.set_column(rows.column_names.index("negative_oversampling"), "negative_oversampling",
                                 pa.array([[4.0], [None], [2.0, 8.0], [3.0]], pa.list_(pa.float64())))
    with pytest.raises(ValueError, match="not aligned"):
        negatives_from_arrow(misaligned, data)


def test_negatives_from_a_mart_built_before_the_oversampling_column_ask_for_a_rebuild(cfg):
    from training.negatives import mix_negatives

    table = toy_sequence_table(n_users=4, n_items=10, seed=0)
    data = SequenceData.from_arrow(table, toy_training_examples(table))
    old_mart = pa.Table.from_pylist([{"user_id": u, "mix": "HARD", "draw": 0, "negative_item_ids": ["i001"]}
                                     for u in data.user_ids])
    write_toy_marts(cfg, "2026-10-30", table, old_mart)
    with pytest.raises(FileNotFoundError, match="no negative_oversampling column .* rebuild the dbt feature marts "
                                                "for 2026-10-30"):
        mix_negatives(cfg, "2026-10-30", data, "HARD")


def test_eval_candidate_sets_align_with_the_test_rows():
    data = toy_data(n_users=3, n_items=10, seed=0)
    split = data.split("test", 8)
    users = [data.user_ids[int(i)] for i in split.user_index]
    rows = pa.Table.from_pylist(
        [{"user_id": users[1], "eval_set": "phns_hard", "item_id": i, "label": 0} for i in ("i001", "i002")]
        + [{"user_id": users[1], "eval_set": "phns_hard", "item_id": "i009", "label": 1}]  # the target: not a candidate
        + [{"user_id": users[0], "eval_set": "easy", "item_id": "i003", "label": 0}])
    sets = candidates_from_arrow(rows, data, split)
    enc = lambda item: int(data.vocab.encode([item])[0])  # noqa: E731
    assert sets["phns_hard"].tolist() == [[0, 0], [enc("i001"), enc("i002")], [0, 0]]
    assert sets["easy"].tolist() == [[enc("i003")], [0], [0]]


# ---- training -------------------------------------------------------------------


def test_tiny_dataset_overfits_with_the_multitask_objective():
    clean = toy_data(n_users=32, n_items=20, skip_rate=0.0, seed=1)
    model = small_model(clean, gate_noise=0.5)
    rng = np.random.default_rng(0)
    negatives = torch.zeros(clean.n_users, 2, 10, dtype=torch.long)  # 2 draws of 10 unseen items, as Spark samples
    for user in range(clean.n_users):
        unseen = np.setdiff1d(np.arange(1, clean.n_items + 1), clean.items[clean.offsets[user]:clean.offsets[user + 1]])
        for draw in range(2):
            chosen = rng.choice(unseen, size=min(10, len(unseen)), replace=False)
            negatives[user, draw, : len(chosen)] = torch.from_numpy(chosen)
    uniform = MixNegatives(negatives, torch.ones(negatives.shape))  # drawn uniformly: every oversampling 1
    objective = MultiTaskObjective(uniform, MultiTaskSettings(), ("short", "mid", "long"), "MEDIUM")
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

    from training.batch_inference import recommend_with_champion
    from training.inference import load_model_for_inference
    from training.train import train_model
    from training.user_features import USER_FEATURE_COLUMNS

    table = toy_sequence_table(n_users=48, n_items=20, skip_rate=0.25, seed=1)
    users, items = list(toy.user_ids), list(toy.vocab.item_ids)
    negatives = pa.Table.from_pylist([
        {"user_id": u, "mix": "HARD", "draw": d, "negative_item_ids": items[d:d + 5], "negative_pools": ["uniform"] * 5,
         "negative_oversampling": [1.0] * 5, "n_negatives": 5, "n_hard": 0, "n_trending": 0, "n_tailing": 0,
         "n_uniform": 5} for u in users for d in (0, 1)])
    write_toy_marts(cfg, "2026-10-30", table, negatives)
    features = user_features_table("2026-10-30", users)
    candidates = pa.Table.from_pylist([{"run_date": dt.date(2026, 10, 30), "user_id": u, "eval_set": name,
                                        "item_id": i, "label": 0} for u in users for name in ("phns_hard", "easy")
                                       for i in items[:4]])
    with duckdb.connect(cfg.paths.warehouse) as con:
        con.execute("CREATE TABLE user_features AS SELECT * FROM features")
        con.execute("CREATE TABLE eval_candidates AS SELECT * FROM candidates")
    out = train_model(cfg, "2026-10-30", "smoe_bst", dataset="toy", epochs=2, phns_mix="hard",
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
    cfg.inference.k = 3
    cfg.inference.exclude_history = False  # 20 items: a toy history leaves too few unseen ones
    recs, _ = recommend_with_champion(cfg, dt.date(2026, 10, 30), bundle)  # reads the user_features mart of the date
    assert recs.num_rows == 3 * toy.n_users
    plays = USER_FEATURE_COLUMNS.index("plays_short")
    assert bundle.model.user_features_of[:, plays].tolist() == pytest.approx([math.log1p(k) for k in range(toy.n_users)])
    batch = toy.split("inference", 16).take(slice(0, 4))
    ids = torch.tensor([[1, 2, 3]] * 4)
    soft, completion = bundle.model.predict_soft_label_and_completion(batch, ids)
    assert soft.shape == completion.shape == (4, 3)
    assert bool(((soft >= 0) & (soft <= 1) & (completion >= 0) & (completion <= 1)).all())
