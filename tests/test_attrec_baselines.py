"""AttRec and the baselines against hand-computed examples (issue #9)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from training.baselines import build_baseline
from encore.core.config import ConfigError
from training.data import SequenceBatch
from training.evaluation import evaluate_model
from training.losses import pairwise_hinge_loss
from training.models import build_model
from training.models.attrec import AttRec, AttRecConfig, HingeObjective
from toy_data import toy_data
from training.trainer import Trainer, TrainSettings


def make_batch(rows: list[list[tuple[int, bool]]], length: int | None = None) -> SequenceBatch:
    """Left-padded batch from rows of (item id, is_skip); user_index = row number."""
    length = length or max(len(r) for r in rows)
    seq = torch.zeros(len(rows), length, dtype=torch.long)
    skip = torch.zeros(len(rows), length, dtype=torch.bool)
    for i, row in enumerate(rows):
        if row:
            seq[i, -len(row):] = torch.tensor([item for item, _ in row])
            skip[i, -len(row):] = torch.tensor([s for _, s in row])
    zeros = torch.zeros(len(rows), dtype=torch.long)
    none = torch.zeros(len(rows), length, 0, dtype=torch.long)
    return SequenceBatch(seq, skip, (~skip).float(), torch.zeros_like(seq), none, none.float(), none.float(), zeros,
                         torch.zeros(len(rows), 0, dtype=torch.long), torch.arange(len(rows)),
                         torch.zeros_like(seq), torch.zeros_like(seq))


def plays(*items: int) -> list[tuple[int, bool]]:
    return [(i, False) for i in items]


def rank_of(scores: torch.Tensor, item: int) -> int:
    """1-based rank of ``item`` (id) in a score row (ties count in its favour)."""
    return int((scores > scores[item - 1]).sum()) + 1


# ---- AttRec ---------------------------------------------------------------------------


def attrec_with(x: list[list[float]], v: list[list[float]], u: list[list[float]], omega: float, short_len: int) -> AttRec:
    """AttRec with identity query/key maps, no time embedding and the given tables (rows = item ids 1..)."""
    model = AttRec(AttRecConfig(n_items=len(x), n_users=len(u), short_len=short_len, hidden=len(x[0]), omega=omega))
    with torch.no_grad():
        model.item_short.weight[1 : len(x) + 1] = torch.tensor(x)
        model.item_long.weight[1 : len(x) + 1] = torch.tensor(v)
        model.user_emb.weight[:] = torch.tensor(u)
        for layer in (model.query, model.key):
            layer.weight.copy_(torch.eye(len(x[0])))
            layer.bias.zero_()
    model.time_emb.zero_()
    return model


def test_attrec_diagonal_mask_by_hand():
    model = attrec_with([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [[0, 0]] * 3, [[0, 0]], omega=0.5, short_len=3)
    xa, xb, xc = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), torch.tensor([1.0, 1.0])

    def attend(keys: list[tuple[float, torch.Tensor]]) -> torch.Tensor:  # softmax over (q·k, value)
        weights = torch.tensor([math.exp(s / math.sqrt(2)) for s, _ in keys])
        weights = weights / weights.sum()
        return sum(w * value for w, (_, value) in zip(weights, keys))

    # q = k = relu(x); the diagonal is masked, so each item attends to the two others only
    expected = (attend([(0, xb), (1, xc)]) + attend([(0, xa), (1, xc)]) + attend([(1, xa), (1, xb)])) / 3
    m = model.short_term(torch.tensor([[1, 2, 3]]))[0]
    assert torch.allclose(m, expected, atol=1e-6)

    # two items: each can only attend to the other, whatever q and k are
    model.query.weight.data.normal_()
    assert torch.allclose(model.short_term(torch.tensor([[0, 1, 2]]))[0], (xa + xb) / 2, atol=1e-6)
    # one item: nothing to attend to (its own position is masked) -> zero intent, no NaN
    assert torch.equal(model.short_term(torch.tensor([[0, 0, 3]]))[0], torch.zeros(2))


def test_attrec_score_is_negative_weighted_distance():
    x = [[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]]
    v = [[0.0, 0.0], [1.0, 1.0], [3.0, 0.0]]
    model = attrec_with(x, v, u=[[1.0, 0.0]], omega=0.25, short_len=2)
    model.attach_users(np.array(["alice"]))
    batch = make_batch([plays(1, 2)])
    m = [0.5, 0.5]  # two items: mean of the other item's X = (X1 + X2) / 2
    expected = [
        -(0.25 * ((1 - vi[0]) ** 2 + vi[1] ** 2) + 0.75 * ((m[0] - xi[0]) ** 2 + (m[1] - xi[1]) ** 2))
        for xi, vi in zip(x, v)
    ]  # [-0.625, -0.625, -2.375]
    assert torch.allclose(model.score_all(batch.seq, context=batch)[0], torch.tensor(expected))
    # unknown user / no context: U folds in as the mean V of the window = (V1 + V2) / 2 = (0.5, 0.5)
    folded = [-(0.25 * ((0.5 - vi[0]) ** 2 + (0.5 - vi[1]) ** 2) + 0.75 * ((m[0] - xi[0]) ** 2 + (m[1] - xi[1]) ** 2))
              for xi, vi in zip(x, v)]
    assert torch.allclose(model.score_all(batch.seq)[0], torch.tensor(folded))


def test_attrec_users_survive_a_different_user_order():
    model = attrec_with([[1.0, 0.0]], [[0.0, 0.0]], u=[[1.0, 0.0], [5.0, 0.0]], omega=1.0, short_len=2)
    model.attach_users(np.array(["a", "b"]))  # training users fix the table
    row_of = {user: int(model.row_of_user[i]) for i, user in enumerate(["a", "b"])}
    model.attach_users(np.array(["b", "new", "a"]))  # another date's data
    assert model.row_of_user.tolist() == [row_of["b"], -1, row_of["a"]]


def test_pairwise_hinge_loss_by_hand():
    positive = torch.tensor([1.0, 2.0])
    negative = torch.tensor([[1.2, 3.0], [1.0, 2.6]])
    # max(0, 0.5 + pos - neg): 0.3, 0, 1.5, 0
    assert pairwise_hinge_loss(positive, negative, 0.5).item() == pytest.approx(0.45)
    mask = torch.tensor([[True, True], [False, True]])
    assert pairwise_hinge_loss(positive, negative, 0.5, mask).item() == pytest.approx(0.1)


def test_attrec_learns_toy_cycles():
    data = toy_data(n_users=64, n_items=20, seed=0)
    torch.manual_seed(0)
    model = build_model("attrec", data.n_items, n_users=data.n_users, max_seq_len=20, hidden=16)
    model.attach_users(data.user_ids)
    settings = TrainSettings(epochs=8, batch_size=32, lr=1e-2, weight_decay=0.0, max_seq_len=20, progress=False, device="cpu")
    trainer = Trainer(model, data, settings, objective=HingeObjective())
    trainer.fit(resume=False)
    assert trainer.evaluate("test")["hr@5"] > 0.6  # popularity-free cycles: random is 5/20


# ---- baselines ------------------------------------------------------------------------

# items 1..4; item 3 is mostly skipped, and it is the most played item overall
POP_TRAIN = make_batch([[(1, False), (2, False), (3, True)], [(2, False), (3, True), (4, False), (4, False)],
                        [(3, True), (3, True), (2, False)]])


def test_most_popular_by_hand():
    plain = build_baseline("most_pop", 4).fit(POP_TRAIN)
    negative = build_baseline("most_pop_neg", 4).fit(POP_TRAIN)
    assert plain.item_scores.tolist() == [1, 3, 4, 2]
    assert negative.item_scores.tolist() == [1, 3, -4, 2]  # skips subtract
    window = torch.tensor([[0, 1]])
    assert (plain.score_all(window)[0].topk(3).indices + 1).tolist() == [3, 2, 4]
    assert (negative.score_all(window)[0].topk(3).indices + 1).tolist() == [2, 4, 1]
    recent = build_baseline("most_pop_recent", 4, recent_events=2).fit(POP_TRAIN)
    recent_neg = build_baseline("most_pop_recent_neg", 4, recent_events=2).fit(POP_TRAIN)
    # last two events per user: (2, 3s), (4, 4), (3s, 2)
    assert recent.item_scores.tolist() == [0, 2, 2, 2]
    assert recent_neg.item_scores.tolist() == [0, 2, -2, 2]


# users: {1,2}, {1,2}, {1,3}, {3, 4 skipped}
KNN_TRAIN = make_batch([plays(1, 2), plays(1, 2), plays(1, 3), [(3, False), (4, True)]])


def test_item_knn_by_hand():
    plain = build_baseline("item_knn", 4).fit(KNN_TRAIN)
    scores = plain.score_all(torch.tensor([[1]]))[0]
    # cos(1,2) = 2/sqrt(3*2), cos(1,3) = 1/sqrt(3*2), cos(1,4) = 0
    assert torch.allclose(scores, torch.tensor([0.0, 2 / math.sqrt(6), 1 / math.sqrt(6), 0.0]))
    assert (scores.topk(2).indices + 1).tolist() == [2, 3]


def test_item_knn_negative_variant_ranks_skipped_item_lower():
    window = make_batch([plays(3)])
    plain = build_baseline("item_knn", 4).fit(KNN_TRAIN).score_all(window.seq, window)[0]
    negative = build_baseline("item_knn_neg", 4).fit(KNN_TRAIN).score_all(window.seq, window)[0]
    # plain: cos(3,4) = 1/sqrt(2) > cos(3,1) = 1/sqrt(6); without the skip item 4 has no co-occurrence
    assert rank_of(plain, 4) == 1 and rank_of(negative, 4) > rank_of(negative, 1)
    # a skip in the current window subtracts: item 2's neighbour 1 is pushed down
    skipped_two = make_batch([[(2, True)]])
    assert build_baseline("item_knn_neg", 4).fit(KNN_TRAIN).score_all(skipped_two.seq, skipped_two)[0, 0] < 0


def test_session_knn_by_hand():
    model = build_baseline("session_knn", 4, session_len=2, neighbors=10).fit(KNN_TRAIN)
    scores = model.score_all(torch.tensor([[1]]))[0]
    # current {1}: cosine 1/sqrt(2) with {1,2}, {1,2}, {1,3}; 0 with {3,4}
    s = 1 / math.sqrt(2)
    assert torch.allclose(scores, torch.tensor([3 * s, 2 * s, s, 0.0]))
    assert (scores[1:].topk(3).indices + 2).tolist() == [2, 3, 4]
    # only the single most similar session counts with neighbors=1 (ties: any of the three {1,·} sessions)
    one = build_baseline("session_knn", 4, session_len=2, neighbors=1).fit(KNN_TRAIN).score_all(torch.tensor([[1]]))[0]
    assert one[0].item() == pytest.approx(s) and one[3].item() == 0.0


def test_session_knn_negative_variant_ranks_skipped_item_lower():
    window = make_batch([plays(3)])
    plain = build_baseline("session_knn", 4, session_len=2).fit(KNN_TRAIN).score_all(window.seq, window)[0]
    negative = build_baseline("session_knn_neg", 4, session_len=2).fit(KNN_TRAIN).score_all(window.seq, window)[0]
    s = 1 / math.sqrt(2)  # {3} vs {1,3} and {3,4}: both 1/sqrt(2)
    assert torch.allclose(plain, torch.tensor([s, 0.0, 2 * s, s]))
    assert torch.allclose(negative, torch.tensor([s, 0.0, 2 * s, -s]))  # the neighbour skipped 4


# two taste clusters: users 0-9 play 1, 2 and skip 3; users 10-19 play 4, 5, 6
MF_USERS = np.array([f"u{i:02d}" for i in range(20)])
MF_TRAIN = make_batch([[(1, False), (2, False), (3, True)]] * 10 + [plays(4, 5, 6)] * 10)


@pytest.mark.parametrize("name", ["wrmf", "bpr"])
def test_matrix_factorization_separates_clusters(name):
    model = build_baseline(name, 6, factors=8, iterations=30 if name == "wrmf" else 200, seed=0)
    model.fit(MF_TRAIN, MF_USERS).attach_users(MF_USERS)
    scores = model.score_all(MF_TRAIN.seq, MF_TRAIN)
    assert set((scores[0].topk(3).indices + 1).tolist()) == {1, 2, 3}
    assert set((scores[15].topk(3).indices + 1).tolist()) == {4, 5, 6}
    folded = model.score_all(torch.tensor([[4, 5]]))[0]  # a user the model never saw
    assert (folded.topk(1).indices + 1).item() in {4, 5, 6}


# cluster A also plays 7 (three users); everyone in A skips 3, which plain MF reads as a play
MF_SKIP_TRAIN = make_batch([[(7, False), (1, False), (2, False), (3, True)]] * 3
                           + [[(1, False), (2, False), (3, True)]] * 7 + [plays(4, 5, 6)] * 10)


@pytest.mark.parametrize("name", ["wrmf", "bpr"])
def test_matrix_factorization_negative_variant_ranks_skipped_item_lower(name):
    iterations = 30 if name == "wrmf" else 200
    ranks = {}
    for variant in (name, f"{name}_neg"):
        model = build_baseline(variant, 7, factors=8, iterations=iterations, seed=0)
        model.fit(MF_SKIP_TRAIN, MF_USERS).attach_users(MF_USERS)
        scores = model.score_all(MF_SKIP_TRAIN.seq, MF_SKIP_TRAIN)[5]  # an A user without item 7
        ranks[variant] = (rank_of(scores, 3), rank_of(scores, 7))
    assert ranks[name][0] <= 3 and ranks[name][0] < ranks[name][1]  # plain: 3 looks like a favourite
    assert ranks[f"{name}_neg"][0] > ranks[f"{name}_neg"][1]  # negative feedback: 3 falls below 7


def test_baselines_run_in_the_shared_evaluation():
    data = toy_data(n_users=48, n_items=20, seed=1)
    model = build_baseline("item_knn", data.n_items).fit(data.split("train", 50), data.user_ids)
    metrics = evaluate_model(model, data.split("test", 50), data.n_items)
    assert metrics["n_users"] == 48 and metrics["hr@10"] > 0.9  # next positive = last positive + 1 co-occurs


def test_baselines_train_through_the_same_tracked_path(cfg):
    """One tracked-fit path for every model: a baseline is fitted, evaluated, tracked and
    registered by train_model exactly like a sequence model."""
    from mlflow import MlflowClient

    from training.train import train_model

    data = toy_data(n_users=48, n_items=20, seed=1)
    out = train_model(cfg, "2026-10-30", "item_knn_neg", data=data, dataset="toy", seed=3)
    assert out["model_name"] == "item_knn_neg" and out["model_version"] == "1"
    assert out["valid"]["hr@10"] > 0.9 and "score_std_median" in out["test"]
    run = MlflowClient(cfg.paths.mlflow_tracking_uri).get_run(out["run_id"])
    assert run.data.params["negative_feedback"] == "True" and run.data.params["seed"] == "3"
    with pytest.raises(ConfigError, match="unknown setting 'epochs'"):  # a closed-form fit has no epochs
        train_model(cfg, "2026-10-30", "item_knn", data=data, epochs=3)
