"""Sequence data, models, losses and metrics on small hand-checked examples."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pyarrow as pa
import pytest
import torch

from training.data import ItemVocab, SequenceBatch, SequenceData, history_mask, time_buckets, window_time_spans
from training.evaluation import evaluate_model
from training.losses import (
    NegativeSampler,
    dropout_infonce_loss,
    full_softmax_loss,
    gbce_beta,
    gbce_loss,
    last_target_positions,
    LossSettings,
    sampled_softmax_loss,
    seen_items,
    sequence_model_loss,
    skip_infonce_loss,
)
from training.metrics import candidate_ranks, metrics_from_ranks, ranks_of_all, target_ranks
from training.models import BERT4Rec, BERT4RecConfig, SASRec, SASRecConfig, build_model
from toy_data import toy_data, toy_training_examples


def hand_table() -> pa.Table:
    # user x: a b(skip) c d e(skip) f -> positives at 0, 2, 3, 5: valid = 3 (d), test = 5 (f)
    # user y: c a(skip) b e -> positives 0, 2, 3: valid = 2 (b), test = 3 (e)
    return pa.Table.from_pylist(
        [
            {"user_id": "x", "item_ids": list("abcdef"), "is_skip": [False, True, False, False, True, False],
             "completion": [1.0, 0.1, 1.0, 0.9, 0.0, 1.0], "valid_idx": 3, "test_idx": 5},
            {"user_id": "y", "item_ids": list("cabe"), "is_skip": [False, True, False, False],
             "completion": [1.0, 0.2, 1.0, 1.0], "valid_idx": 2, "test_idx": 3},
        ]
    )


def with_targets(table: pa.Table) -> SequenceData:
    """The data with its fct_training_examples rows (targets), as the nightly loads them."""
    return SequenceData.from_arrow(table, toy_training_examples(table))


# ---- data -----------------------------------------------------------------------


def test_vocabulary_ids_and_roundtrip(tmp_path):
    data = SequenceData.from_arrow(hand_table())
    vocab = data.vocab
    assert vocab.item_ids == list("abcdef") and vocab.mask_id == 7 and vocab.size == 8
    assert data.items.tolist() == [1, 2, 3, 4, 5, 6, 3, 1, 2, 5]
    assert vocab.encode(["f", "zzz", "a"]).tolist() == [6, 0, 1]  # unknown -> padding
    vocab.save(tmp_path / "vocab.json")
    again = ItemVocab.load(tmp_path / "vocab.json")
    assert again.decode(np.array([[6, 1]])).tolist() == [["f", "a"]]
    with pytest.raises(ValueError):
        again.decode(np.array([0]))


def test_splits_follow_leave_last_out_and_next_positive_targets():
    data = with_targets(hand_table())
    a, b, c, d, e, f = range(1, 7)
    train = data.split("train", max_seq_len=4)
    # x: events before the valid target d: a b c; target = next positive inside [0, 3):
    # a -> c, b(skip) -> c, c -> d is the valid target, outside the train range -> none.
    # y: c a(skip) before its valid target b: no target inside the range -> y is left out.
    assert train.seq.tolist() == [[0, a, b, c]]
    assert train.next_pos.tolist() == [[0, c, c, 0]]
    assert train.user_index.tolist() == [0]

    valid = data.split("valid", max_seq_len=4)
    assert valid.seq.tolist() == [[0, a, b, c], [0, 0, c, a]]
    assert valid.target.tolist() == [d, b]

    test = data.split("test", max_seq_len=4)
    # x: a b c d e before f, truncated to the most recent 4
    assert test.seq.tolist() == [[b, c, d, e], [0, c, a, b]]
    assert test.is_skip.tolist() == [[True, False, False, True], [False, False, True, False]]
    assert test.target.tolist() == [f, e]
    assert test.skip_negatives.tolist() == [[b, 0, 0, e], [0, 0, a, 0]]
    assert test.completion[0].tolist() == pytest.approx([0.1, 1.0, 0.9, 0.0])

    inference = data.split("inference", max_seq_len=6)
    assert inference.seq[0].tolist() == [a, b, c, d, e, f]


def test_all_windows_use_every_training_target_once():
    # user z: 10 events i0..i9, i3 skipped; valid = 8, test = 9 -> train range [0, 8).
    # L = 4: windows end at 8, 5, 2 (stride L-1): [4..8), [1..5), [0..2).
    # y (from hand_table): no train target -> left out, as in the single-window split.
    z = {"user_id": "z", "item_ids": [f"i{n}" for n in range(10)], "is_skip": [n == 3 for n in range(10)],
         "completion": [1.0] * 10, "valid_idx": 8, "test_idx": 9}
    data = with_targets(pa.Table.from_pylist([z, hand_table().to_pylist()[1]]))
    i = {f"i{n}": data.vocab.encode([f"i{n}"])[0] for n in range(10)}
    train = data.split("train", max_seq_len=4, all_windows=True)
    assert train.user_index.tolist() == [0, 0, 0]
    assert train.seq.tolist() == [[i["i4"], i["i5"], i["i6"], i["i7"]],
                                  [i["i1"], i["i2"], i["i3"], i["i4"]],
                                  [0, 0, i["i0"], i["i1"]]]
    # i2 -> i4 skips over the skipped i3; each window's last position has no target inside it
    assert train.next_pos.tolist() == [[i["i5"], i["i6"], i["i7"], 0],
                                       [i["i2"], i["i4"], i["i4"], 0],
                                       [0, 0, i["i1"], 0]]
    targets = sorted(t for row in train.next_pos.tolist() for t in row if t)
    assert targets == sorted([i["i1"], i["i2"], i["i4"], i["i4"], i["i5"], i["i6"], i["i7"]])  # positions 0..6
    # stride 2: windows end at 8, 6, 4: [4..8), [2..6), [0..4); a window keeps the targets among its
    # last 2 events (the oldest keeps all), so the same seven targets each appear once, with more context
    strided = data.split("train", max_seq_len=4, all_windows=True, window_stride=2)
    assert strided.seq.tolist() == [[i["i4"], i["i5"], i["i6"], i["i7"]],
                                    [i["i2"], i["i3"], i["i4"], i["i5"]],
                                    [i["i0"], i["i1"], i["i2"], i["i3"]]]
    assert strided.next_pos.tolist() == [[0, i["i6"], i["i7"], 0],
                                         [i["i4"], i["i4"], i["i5"], 0],
                                         [i["i1"], i["i2"], 0, 0]]
    assert data.split("train", 4, all_windows=True, window_stride=3).next_pos.tolist() == train.next_pos.tolist()
    # next_item targets: the skipped i3 becomes i2's target instead of being stepped over, and y
    # (c, a skipped) now has a training target: c -> a
    every_item = data.split("train", 4, all_windows=True, train_target="next_item")
    assert every_item.user_index.tolist() == [0, 0, 0, 1]
    assert every_item.next_pos.tolist() == [[i["i5"], i["i6"], i["i7"], 0], [i["i2"], i["i3"], i["i4"], 0],
                                            [0, 0, i["i1"], 0], [0, 0, data.vocab.encode(["a"])[0], 0]]
    with pytest.raises(ValueError, match="train_target"):
        data.split("train", 4, train_target="next_click")
    with pytest.raises(ValueError, match="window_stride"):
        data.split("train", 4, all_windows=True, window_stride=4)
    # a history that fits one window gives the same rows as the default split
    short = with_targets(hand_table())
    assert short.split("train", 4, all_windows=True).seq.tolist() == short.split("train", 4).seq.tolist()
    with pytest.raises(ValueError):
        short.split("test", 4, all_windows=True)


def test_targets_come_from_the_training_examples_and_stay_inside_the_window():
    """next_k (fct_training_examples) per position: x = a b* c d e* f (valid d, test f)."""
    data = with_targets(hand_table())
    a, b, c, d, e, f = range(1, 7)
    train = data.split("train", max_seq_len=4)
    # positions a, b -> next positive c, then d, which is the valid target: another split, no train label
    # (so K is 1 here: the widest next-K list of the examples)
    assert train.next_k[0].tolist() == [[0], [c], [c], [0]]
    assert train.next_k_label[0, 1].tolist() == [1.0]
    without = SequenceData.from_arrow(hand_table())  # no examples: no next-positive training targets
    with pytest.raises(ValueError, match="fct_training_examples"):
        without.split("train", 4)
    assert without.split("train", 4, train_target="next_item").next_pos[0].tolist() == [0, b, c, 0]


def test_valid_and_test_rows_carry_the_whole_history_before_the_target():
    rows = hand_table().to_pylist()
    rows[0]["earlier_item_ids"], rows[1]["earlier_item_ids"] = ["z"], []
    data = SequenceData.from_arrow(pa.Table.from_pylist(rows), vocab=ItemVocab(list("abcdefz")))
    test = data.split("test", max_seq_len=2)  # a window of 2 sees d e; the history is a b c d e + the older z
    assert test.seq[0].tolist() == [4, 5]
    assert sorted(i for i in test.history[0].tolist() if i) == [1, 2, 3, 4, 5, 7]
    assert sorted(i for i in test.history[1].tolist() if i) == [1, 2, 3]  # c a b before e
    valid = data.split("valid", max_seq_len=2)
    assert sorted(i for i in valid.history[0].tolist() if i) == [1, 2, 3, 7]  # before d


def test_time_spans_are_seconds_since_the_previous_event_and_to_the_newest_in_log2_buckets():
    # a left-padded window: pad, then events at 100, 100, 101, 1101 s
    present = np.array([[False, True, True, True, True]])
    seconds = np.array([[0, 100, 100, 101, 1101]])
    gap, age = window_time_spans(seconds, present)
    assert gap.tolist() == [[-1, -1, 0, 1, 1000]]  # padding and the window's first event: unknown
    assert age.tolist() == [[-1, 1001, 1001, 1000, 0]]
    assert [b.tolist() for b in window_time_spans(None, present)] == [[[-1] * 5]] * 2  # no times: unknown
    # buckets: padding 0, unknown 1, 0 s -> 2, 1 s -> 3 + log2(1) = 3, 1000 s -> 3 + floor(log2(1000)) = 12
    assert time_buckets(torch.from_numpy(gap), torch.from_numpy(present)).tolist() == [[0, 1, 2, 3, 12]]
    assert time_buckets(torch.from_numpy(age), torch.from_numpy(present)).tolist() == [[0, 12, 12, 12, 2]]
    assert time_buckets(torch.tensor([10**12]), torch.tensor([True])).tolist() == [31]  # capped at the last bucket


def test_splits_read_the_gap_to_the_previous_event_even_outside_the_window():
    rows = hand_table().to_pylist()
    t0 = 1_700_000_000
    # x: a b c d e f at t0, t0 + 1, t0 + 1, t0 + 9, t0 + 9 + 2**20, t0 + 9 + 2**20 + 60
    offsets_x = [0, 1, 1, 9, 9 + 2**20, 9 + 2**20 + 60]
    rows[0]["event_ts"] = [dt.datetime.fromtimestamp(t0 + o, dt.timezone.utc) for o in offsets_x]
    rows[1]["event_ts"] = [dt.datetime.fromtimestamp(t0 + o, dt.timezone.utc) for o in (0, 0, 4, 4)]
    data = SequenceData.from_arrow(pa.Table.from_pylist(rows))
    assert data.event_seconds[:6].tolist() == [t0 + o for o in offsets_x]
    test = data.split("test", max_seq_len=2)  # x reads d e before f; y reads a b before e
    assert test.gap_seconds.tolist() == [[8, 2**20], [0, 4]]  # x: d 8 s after c, outside the window
    assert test.age_seconds.tolist() == [[2**20, 0], [4, 0]]
    inference = data.split("inference", max_seq_len=8)  # x's first event has no previous one: unknown
    assert inference.gap_seconds[0].tolist() == [-1, -1, -1, 1, 0, 8, 2**20, 60]
    without = SequenceData.from_arrow(hand_table())  # no times: every span unknown
    assert without.event_seconds is None and without.split("test", 2).gap_seconds.tolist() == [[-1, -1], [-1, -1]]


def test_history_mask_marks_items_of_window():
    seq = torch.tensor([[0, 2, 3, 2], [1, 0, 0, 4]])
    skip = torch.tensor([[False, True, False, False], [True, False, False, False]])
    assert history_mask(seq, 4).tolist() == [[False, True, True, False], [True, False, False, True]]
    assert history_mask(seq, 4, positive_only=~skip).tolist() == [[False, True, True, False], [False, False, False, True]]


# ---- models ---------------------------------------------------------------------


def tiny(model_cls, config_cls, **kw):
    torch.manual_seed(0)
    return model_cls(config_cls(n_items=20, max_seq_len=8, hidden=16, layers=2, heads=2, dropout=0.0, **kw)).eval()


def test_sasrec_is_causal():
    model = tiny(SASRec, SASRecConfig)
    seqs = torch.tensor([[0, 0, 3, 4, 5, 6, 7, 8]])
    changed = seqs.clone()
    changed[0, 5] = 19
    with torch.no_grad():
        before, after = model.encode(seqs), model.encode(changed)
    assert torch.allclose(before[:, :5], after[:, :5], atol=1e-6)
    assert not torch.allclose(before[:, 5:], after[:, 5:], atol=1e-4)


def test_attention_dropout_acts_on_the_attention_probabilities_only():
    seqs = torch.tensor([[0, 0, 3, 4, 5, 6, 7, 8], [0, 0, 0, 0, 9, 10, 11, 12]])

    def two_training_passes(dropout=0.0, attention_dropout=0.0):
        torch.manual_seed(0)
        model = SASRec(SASRecConfig(n_items=20, max_seq_len=8, hidden=16, layers=2, heads=2, dropout=dropout,
                                    attention_dropout=attention_dropout))
        torch.manual_seed(1)
        return model, model.encode(seqs), model.encode(seqs)

    model, first, second = two_training_passes(attention_dropout=0.0)
    assert torch.equal(first, second)  # no dropout anywhere: training passes are deterministic
    with torch.no_grad():
        evaluated = model.eval().encode(seqs)
    model, first, second = two_training_passes(attention_dropout=0.5)
    assert not torch.allclose(first, second, atol=1e-4)
    with torch.no_grad():  # same weights (same seed); evaluation drops nothing
        assert torch.allclose(model.eval().encode(seqs), evaluated, atol=1e-6)
    # the other dropouts still act without it
    _, first, second = two_training_passes(dropout=0.5, attention_dropout=0.0)
    assert not torch.allclose(first, second, atol=1e-4)
    attention = [m.attn for m in model.encoder.blocks]
    assert [a.attention_dropout for a in attention] == [0.5, 0.5]


def test_attention_dropout_comes_from_the_training_config():
    from encore.core.config import EncoreConfig
    from training.specs import model_config

    cfg = EncoreConfig()
    cfg.training.attention_dropout = 0.1
    config = model_config(SASRecConfig, cfg, 20)
    assert (config.attention_dropout, config.dropout) == (0.1, cfg.training.dropout)
    # models without the setting keep one dropout for both
    bert = BERT4Rec(BERT4RecConfig(n_items=20, max_seq_len=8, hidden=16, layers=1, heads=2, dropout=0.3))
    assert bert.encoder.blocks[0].attn.attention_dropout == 0.3


def test_sasrec_ignores_padding_and_scores_every_item():
    model = tiny(SASRec, SASRecConfig)
    with torch.no_grad():
        short = model.score_all(torch.tensor([[0, 0, 0, 0, 0, 3, 4, 5]]))
        shorter_window = model.score_all(torch.tensor([[0, 0, 3, 4, 5]]))
        all_pad = model.score_all(torch.zeros(1, 8, dtype=torch.long))
    assert short.shape == (1, 20)
    assert torch.allclose(short, shorter_window, atol=1e-5)  # positions align at the newest event
    assert torch.isfinite(all_pad).all()


def test_sasrec_without_prediction_layer_scores_the_last_hidden_state():
    model = build_model("sasrec", 20, max_seq_len=8, hidden=16, layers=1, heads=2, prediction_layer=False).eval()
    seqs = torch.tensor([[0, 0, 0, 0, 0, 3, 4, 5]])
    with torch.no_grad():
        expected = model.encode(seqs)[:, -1] @ model.item_emb.weight[1:21].T
        assert torch.allclose(model.score_all(seqs), expected, atol=1e-6)
    assert not any(isinstance(m, torch.nn.Linear) for m in model.prediction.modules())


def test_untied_sasrec_scores_against_its_own_output_table():
    model = build_model("sasrec", 20, max_seq_len=8, hidden=16, layers=1, heads=2, prediction_layer=False,
                        tied_embeddings=False).eval()
    seqs = torch.tensor([[0, 0, 0, 0, 0, 3, 4, 5]])
    assert model.item_embeddings() is model.output_emb.weight
    with torch.no_grad():
        hidden = model.encode(seqs)[:, -1]
        assert torch.allclose(model.score_all(seqs), hidden @ model.output_emb.weight[1:21].T, atol=1e-6)
        assert not torch.allclose(model.score_all(seqs), hidden @ model.item_emb.weight[1:21].T, atol=1e-3)


def test_sasrec_feedback_embedding_reads_each_events_skip_flag():
    from training.evaluation import score_batch

    data = toy_data(n_users=6, n_items=20, skip_rate=0.4, seed=3)
    batch = data.split("valid", 8)
    assert batch.is_skip.any()
    model = tiny(SASRec, SASRecConfig, feedback_embedding=True)
    flipped = batch.take(slice(None))
    flipped.is_skip = ~batch.is_skip & (batch.seq != 0)
    with torch.no_grad():
        scores = score_batch(model, batch)  # the evaluator passes the batch as context
        assert torch.equal(scores, model.score_all(batch.seq, context=batch))
        assert not torch.allclose(scores, model.score_all(flipped.seq, context=flipped), atol=1e-4)
        with pytest.raises(ValueError, match="skip flag"):
            model.score_all(batch.seq)
        plain = tiny(SASRec, SASRecConfig)  # without the option the flags are not read
        assert torch.equal(plain.score_all(batch.seq), score_batch(plain, flipped))


@pytest.mark.parametrize("option", ["time_embedding", "time_attention"])
def test_sasrec_reads_each_events_time_with_either_option(option):
    seqs = torch.tensor([[0, 0, 3, 4, 5], [0, 0, 3, 4, 5]])
    skips = torch.zeros_like(seqs, dtype=torch.bool)
    # row 0: three events a second apart; row 1: the same events a week apart
    seconds = torch.tensor([[0, 0, 100, 101, 102], [0, 0, 100, 100 + 604_800, 100 + 2 * 604_800]])
    batch = SequenceBatch.of_inputs(seqs, skips, seconds)
    assert batch.gap_seconds.tolist() == [[-1, -1, -1, 1, 1], [-1, -1, -1, 604_800, 604_800]]
    assert batch.age_seconds.tolist() == [[-1, -1, 2, 1, 0], [-1, -1, 1_209_600, 604_800, 0]]
    model = tiny(SASRec, SASRecConfig, **{option: True})
    with torch.no_grad():
        if option == "time_attention":  # biases of a trained size, not the init's N(0, 0.02)
            model.interval_bias.weight.normal_()
        scores = model.score_all(seqs, context=batch)
        assert not torch.allclose(scores[0], scores[1], atol=1e-4)  # same items, other times: other scores
        with pytest.raises(ValueError, match="reads each event's time"):
            model.score_all(seqs)
        plain = tiny(SASRec, SASRecConfig)  # without the option the times are not read
        assert torch.allclose(plain.score_all(seqs, context=batch)[0], plain.score_all(seqs, context=batch)[1])


def test_time_attention_biases_each_head_by_the_span_between_two_events():
    from training.models.transformer import attention_mask

    model = tiny(SASRec, SASRecConfig, time_attention=True)
    seqs = torch.tensor([[0, 3, 4, 5]])
    batch = SequenceBatch.of_inputs(seqs, torch.zeros_like(seqs, dtype=torch.bool), torch.tensor([[0, 10, 10, 17]]))
    captured = {}
    model.encoder.blocks[0].attn.register_forward_hook(lambda module, args, out: captured.update(mask=args[1]))
    with torch.no_grad():
        model.encode(seqs, context=batch)
        mask, table = captured["mask"], model.interval_bias.weight
    allowed = attention_mask(seqs != 0, causal=True)
    assert torch.isneginf(mask[~allowed.expand_as(mask)]).all()
    # query 3 (t = 17) on key 1 (t = 10): 7 s -> bucket 3 + 2 = 5; on itself: 0 s -> 2; 1 on 2: 0 s -> 2
    assert torch.equal(mask[0, :, 3, 1], table[5]) and torch.equal(mask[0, :, 3, 3], table[2])
    assert torch.equal(mask[0, :, 2, 1], table[2])


def test_bert4rec_is_bidirectional_and_appends_mask():
    model = tiny(BERT4Rec, BERT4RecConfig)
    seqs = torch.tensor([[0, 0, 3, 4, 5, 6, 7, 8]])
    changed = seqs.clone()
    changed[0, 6] = 19
    with torch.no_grad():
        assert not torch.allclose(model.encode(seqs)[:, 2], model.encode(changed)[:, 2], atol=1e-4)
    appended = model.append_mask(seqs)
    assert appended.tolist() == [[0, 3, 4, 5, 6, 7, 8, 21]]  # mask id = n_items + 1
    with torch.no_grad():
        expected = model.predict_vectors(model.encode(appended)[:, -1]) @ model.item_emb.weight[1:21].T
        assert torch.allclose(model.score_all(seqs), expected)


def test_bert4rec_masks_only_positive_events():
    from training.data import SequenceBatch

    seq = torch.tensor([[0, 0, 3, 4, 5, 6, 7, 8]] * 50)
    skip = torch.zeros_like(seq, dtype=torch.bool)
    skip[:, 3] = True  # item 4 is a skip: never a cloze target
    zeros = torch.zeros_like(seq)
    none = torch.zeros(50, 8, 0, dtype=torch.long)
    batch = SequenceBatch(seq, skip, zeros.float(), zeros, none, none.float(), none.float(), zeros[:, 0],
                          torch.zeros(50, 0, dtype=torch.long), torch.arange(50), zeros, zeros)
    model = tiny(BERT4Rec, BERT4RecConfig, mask_prob=0.5)
    torch.manual_seed(1)
    inputs, targets = model.training_inputs(batch)
    masked = inputs == model.mask_id
    assert masked.any(dim=1).all()  # every row trains on at least one position
    assert not masked[:, :2].any() and not masked[:, 3].any()  # never padding, never the skip
    assert torch.equal(targets != 0, masked)
    assert torch.equal(targets[masked], seq[masked])
    assert torch.equal(inputs[~masked], seq[~masked])
    # no random draw -> exactly the newest positive is masked (the prediction shape)
    model.config.mask_prob = 0.0
    inputs, targets = model.training_inputs(batch)
    assert (inputs == model.mask_id).nonzero()[:, 1].unique().tolist() == [7]
    assert targets[:, 7].unique().tolist() == [8]


def test_build_model_rejects_unknown_names_and_settings():
    assert isinstance(build_model("sasrec", 5, hidden=8, heads=2), SASRec)
    with pytest.raises(ValueError, match=r"sasrec: unknown settings \['unknown_setting'\]"):
        build_model("sasrec", 5, hidden=8, heads=2, unknown_setting=1)
    with pytest.raises(ValueError, match="unknown model"):
        build_model("gru4rec", 5)


# ---- losses ---------------------------------------------------------------------


def test_sampled_softmax_matches_hand_computation():
    table = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])  # pad, 3 items, mask
    vectors = torch.tensor([[2.0, 1.0]])
    targets = torch.tensor([1])  # score 2
    negatives = torch.tensor([2, 3, 1])  # scores 1, 3, and the target itself (masked out)
    expected = -(2 - math.log(math.exp(2) + math.exp(1) + math.exp(3)))
    assert sampled_softmax_loss(vectors, targets, table, negatives).item() == pytest.approx(expected, rel=1e-6)
    # full softmax over items 1..3 is the same set here
    assert full_softmax_loss(vectors, targets, table).item() == pytest.approx(expected, rel=1e-6)


def test_full_softmax_label_smoothing_spreads_a_share_over_every_item():
    table = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    vectors = torch.tensor([[2.0, 1.0]])  # items 1..3 score 2, 1, 3
    log_z = math.log(math.exp(2) + math.exp(1) + math.exp(3))
    nll = [log_z - 2, log_z - 1, log_z - 3]  # -log p of each item
    expected = 0.9 * nll[0] + 0.1 * sum(nll) / 3  # 10 % of the target's mass spread evenly
    loss = full_softmax_loss(vectors, torch.tensor([1]), table, label_smoothing=0.1).item()
    assert loss == pytest.approx(expected, rel=1e-6)


def test_full_softmax_without_seen_items_drops_them_but_never_the_target():
    table = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    vectors = torch.tensor([[2.0, 1.0], [2.0, 1.0]])  # items 1..3 score 2, 1, 3
    excluded = torch.tensor([[False, False, False, True, False],  # row 0 has read item 3
                             [False, True, False, True, False]])  # row 1 has read items 1 and 3; 1 is its target
    expected = math.log(math.exp(2) + math.exp(1)) - 2  # both rows: softmax over items 1 and 2
    loss = full_softmax_loss(vectors, torch.tensor([1, 1]), table, excluded=excluded).item()
    assert loss == pytest.approx(expected, rel=1e-6)


def test_full_softmax_against_weighted_next_k_targets():
    table = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    vectors = torch.tensor([[2.0, 1.0], [2.0, 1.0]])  # items 1..3 score 2, 1, 3
    log_z = math.log(math.exp(2) + math.exp(1) + math.exp(3))
    nll = {1: log_z - 2, 2: log_z - 1, 3: log_z - 3}
    targets = torch.tensor([[1, 3, 2], [2, 0, 0]])  # row 1 has one target left inside its window
    weights = torch.tensor([[1.0, 0.6, 0.3], [1.0, 0.6, 0.3]])
    row0 = (1.0 * nll[1] + 0.6 * nll[3] + 0.3 * nll[2]) / 1.9
    loss = full_softmax_loss(vectors, targets, table, weights=weights).item()
    assert loss == pytest.approx((row0 + nll[2]) / 2, rel=1e-6)
    # one target per row is the plain cross-entropy
    single = full_softmax_loss(vectors, torch.tensor([[1, 0], [2, 0]]), table, weights=weights[:, :2]).item()
    assert single == pytest.approx(full_softmax_loss(vectors, torch.tensor([1, 2]), table).item(), rel=1e-6)
    # label smoothing: 10 % of the mass spread evenly, as for one target
    smoothed = full_softmax_loss(vectors[:1], targets[:1], table, label_smoothing=0.1, weights=weights[:1]).item()
    assert smoothed == pytest.approx(0.9 * row0 + 0.1 * sum(nll.values()) / 3, rel=1e-6)


def test_weighted_next_k_targets_stay_in_a_softmax_without_seen_items():
    table = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    vectors = torch.tensor([[2.0, 1.0]])  # items 1..3 score 2, 1, 3
    excluded = torch.tensor([[False, True, True, True, False]])  # has read items 1, 2, 3; 1 and 3 are targets
    log_z = math.log(math.exp(2) + math.exp(3))  # item 2 dropped, the targets kept
    expected = (0.5 * (log_z - 2) + 0.5 * (log_z - 3))
    loss = full_softmax_loss(vectors, torch.tensor([[1, 3]]), table, excluded=excluded,
                             weights=torch.tensor([[1.0, 1.0]])).item()
    assert loss == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="positive weight"):
        full_softmax_loss(vectors, torch.tensor([[0, 0]]), table, weights=torch.tensor([[1.0, 1.0]]))


def test_next_k_training_reads_the_marts_next_k_positives_with_their_soft_labels():
    table = hand_table()
    vocab = ItemVocab.build(pa.array(list("abcdef")))
    torch.manual_seed(0)
    model = SASRec(SASRecConfig(n_items=vocab.n_items, max_seq_len=4, hidden=8, heads=2, dropout=0.0,
                                prediction_layer=False)).eval()

    def loss(rows, soft_labels, target):
        data = SequenceData.from_arrow(rows, toy_training_examples(rows, soft_labels), vocab)
        batch = data.split("train", 4, train_target=target)
        return sequence_model_loss(model, batch, LossSettings(loss="full_softmax", train_target=target)).nll.item()

    # one soft label: the next positive alone, as next_positive trains
    assert loss(table, (1.0,), "next_k") == pytest.approx(loss(table, (1.0,), "next_positive"), rel=1e-6)
    # user x's training window is a b(skip) c; positions 0 (a) and 1 (b) have next positive c,
    # then d, the valid target, outside the window; user y's window c a(skip) has none inside
    hidden = model.encode(torch.tensor([[0, 1, 2, 3]]))[0, 1:3]  # window a b c: positions a, b
    log_p = torch.log_softmax(hidden @ model.item_emb.weight[1:7].T, dim=1)
    expected = -log_p[:, 2].mean().item()  # item c (id 3) at both positions
    assert loss(table, (1.0, 0.6), "next_k") == pytest.approx(expected, rel=1e-5)
    # user z reads a c d e before its valid target b: position a has next c (1.0) and d (0.6),
    # c has d and e, d has e alone (b lies outside the window)
    user_z = pa.Table.from_pylist([{"user_id": "z", "item_ids": list("acdebf"), "is_skip": [False] * 6,
                                   "completion": [1.0] * 6, "valid_idx": 4, "test_idx": 5}])
    log_p = torch.log_softmax(model.encode(torch.tensor([[1, 3, 4, 5]]))[0, :3] @ model.item_emb.weight[1:7].T, 1)
    c, d, e = 2, 3, 4  # columns of items c, d, e
    expected = -((log_p[0, c] + 0.6 * log_p[0, d]) / 1.6 + (log_p[1, d] + 0.6 * log_p[1, e]) / 1.6 + log_p[2, e]) / 3
    assert loss(user_z, (1.0, 0.6), "next_k") == pytest.approx(expected.item(), rel=1e-5)
    bert = BERT4Rec(BERT4RecConfig(n_items=vocab.n_items, max_seq_len=4, hidden=8, heads=2))
    data = SequenceData.from_arrow(table, toy_training_examples(table), vocab)
    with pytest.raises(ValueError, match="causal"):
        sequence_model_loss(bert, data.split("train", 4, train_target="next_k"),
                            LossSettings(loss="full_softmax", train_target="next_k"))


def test_seen_items_are_the_positions_read_so_far_or_the_whole_row():
    inputs = torch.tensor([[0, 2, 1, 2]])  # left padding, then items 2, 1, 2
    causal = seen_items(inputs, 4, causal=True)[0, :, 1:3].int().tolist()  # columns: items 1, 2
    assert causal == [[0, 0], [0, 1], [1, 1], [1, 1]]
    bidirectional = seen_items(inputs, 4, causal=False)[0, :, 1:4].int().tolist()  # items 1, 2, 3
    assert bidirectional == [[1, 1, 0]] * 4


def test_dropout_infonce_scores_each_view_against_its_pair_and_the_other_windows():
    first = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    second = torch.tensor([[2.0, 2.0], [3.0, 0.0]])  # cosine, so only the directions count
    t, c = 0.5, 1 / math.sqrt(2)

    def lse(*x):
        return math.log(sum(math.exp(v) for v in x))

    # views v0 (1,0), v1 (0,1), v2 (c,c), v3 (1,0); pairs (v0, v2) and (v1, v3)
    expected = [lse(0, c / t, 1 / t) - c / t,  # v0: v1, v2 (its pair), v3
                lse(0, c / t, 0) - 0,  # v1: v0, v2, v3 (its pair)
                math.log(3),  # v2: v0 (its pair), v1, v3 all at cosine c
                lse(1 / t, 0, c / t) - 0]  # v3: v0, v1 (its pair), v2
    loss = dropout_infonce_loss(first, second, temperature=t).item()
    assert loss == pytest.approx(sum(expected) / 4, rel=1e-6)


def test_last_target_positions_skip_rows_without_a_target():
    has_target = torch.tensor([[True, False, True, False], [False] * 4, [False, True, False, False]])
    rows, positions = last_target_positions(has_target)
    assert rows.tolist() == [0, 2] and positions.tolist() == [2, 1]


def test_gbce_beta_interpolates_between_bce_and_the_sampling_rate():
    # alpha = 256 / 1681; beta = t * alpha + (1 - t)
    assert gbce_beta(256, 1682, 0.0) == pytest.approx(1.0)
    assert gbce_beta(256, 1682, 1.0) == pytest.approx(256 / 1681)
    assert gbce_beta(256, 1682, 0.75) == pytest.approx(0.25 + 0.75 * 256 / 1681)


def test_gbce_matches_hand_computation_and_ignores_a_negative_equal_to_the_target():
    table = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, 0.0]])  # pad, 3 items, mask
    vectors = torch.tensor([[1.0, 0.0]])  # items 1..3 score 2, 0, -1

    def softplus(x):
        return math.log1p(math.exp(x))

    loss = gbce_loss(vectors, torch.tensor([1]), table, torch.tensor([[2, 3]]), beta=0.5).item()
    assert loss == pytest.approx((0.5 * softplus(-2) + softplus(0) + softplus(-1)) / 3, rel=1e-6)
    hit = gbce_loss(vectors, torch.tensor([1]), table, torch.tensor([[1, 3]]), beta=0.5).item()
    assert hit == pytest.approx((0.5 * softplus(-2) + softplus(-1)) / 3, rel=1e-6)


def test_sampled_softmax_uses_the_batch_targets_as_negatives():
    table = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    vectors = torch.tensor([[2.0, 1.0], [0.0, 1.0]])
    targets = torch.tensor([1, 3])  # row 0 scores items 1,2,3 as 2,1,3; row 1 as 0,1,1
    negatives = torch.tensor([2])  # candidates = {1, 2, 3}: row 1's target 3 is a negative for row 0
    row0 = -(2 - math.log(math.exp(2) + math.exp(1) + math.exp(3)))
    row1 = -(1 - math.log(math.exp(0) + math.exp(1) + math.exp(1)))
    loss = sampled_softmax_loss(vectors, targets, table, negatives).item()
    assert loss == pytest.approx((row0 + row1) / 2, rel=1e-6)


def test_negative_sampler_is_per_epoch_and_reproducible():
    sampler = NegativeSampler(n_items=100, n_samples=50, seed=3)
    first = sampler.resample(1).clone()
    assert torch.equal(first, NegativeSampler(100, 50, 3).resample(1))
    assert not torch.equal(first, sampler.resample(2))
    assert first.min() >= 1 and first.max() <= 100


def test_skip_infonce_matches_hand_computation():
    table = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [-1.0, 0.0], [1.0, 1.0]])
    anchors = torch.tensor([[[3.0, 0.0], [0.0, 1.0]]])  # [B=1, L=2, D]
    positives = torch.tensor([[1, 0]])  # second position has no target
    negatives = torch.tensor([[2, 3, 1, 0]])  # item 1 equals the positive -> ignored; 0 = none
    t = 0.5
    # cos(anchor, item1) = 1, cos(anchor, item2) = 0, cos(anchor, item3) = -1
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + math.exp(0 / t) + math.exp(-1 / t)))
    loss = skip_infonce_loss(anchors, positives, negatives, table, temperature=t)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # no usable negative -> zero (and still differentiable)
    zero = skip_infonce_loss(anchors.requires_grad_(), positives, torch.tensor([[1, 0]]), table, t)
    assert zero.item() == 0.0
    zero.backward()


# ---- metrics --------------------------------------------------------------------


def brute_force_rank(scores: np.ndarray, target: int, excluded: set[int]) -> int:
    """Pessimistic rank: every other included item scoring at least as high is ahead."""
    return 1 + sum(1 for j, s in enumerate(scores) if j != target and j not in excluded and s >= scores[target])


def optimistic_rank(scores: np.ndarray, item: int, excluded: set[int]) -> int:
    return 1 + sum(1 for j, s in enumerate(scores) if j != item and j not in excluded and s > scores[item])


def test_target_ranks_and_metrics_match_numpy_reference():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(40, 30))
    targets = rng.integers(0, 30, size=40)
    excluded = rng.random((40, 30)) < 0.2
    excluded[np.arange(40), targets] = False
    ranks = target_ranks(torch.tensor(scores), torch.tensor(targets), torch.tensor(excluded))
    expected = [brute_force_rank(scores[u], targets[u], set(np.flatnonzero(excluded[u]))) for u in range(40)]
    assert ranks.tolist() == expected
    assert ranks_of_all(torch.tensor(scores), torch.tensor(excluded))[np.arange(40), targets].tolist() == expected

    metrics = metrics_from_ranks(ranks)
    r = np.array(expected, dtype=float)
    for k in (1, 5, 10, 20):
        assert metrics[f"hr@{k}"] == pytest.approx(np.mean(r <= k), abs=1e-6)
        assert metrics[f"ndcg@{k}"] == pytest.approx(np.mean(np.where(r <= k, 1 / np.log2(r + 1), 0)), abs=1e-6)
        assert metrics[f"mrr@{k}"] == pytest.approx(np.mean(np.where(r <= k, 1 / r, 0)), abs=1e-6)
    assert metrics["recall@5"] == metrics["hr@5"]


def test_ties_count_against_the_target():
    """A model that scores every item alike ranks every target last, not first (issue #22)."""
    flat = torch.zeros(3, 6)
    targets = torch.tensor([0, 2, 5])
    assert target_ranks(flat, targets).tolist() == [6, 6, 6]
    excluded = torch.zeros(3, 6, dtype=torch.bool)
    excluded[:, 3] = True
    assert target_ranks(flat, targets, excluded).tolist() == [5, 5, 5]
    assert metrics_from_ranks(target_ranks(flat, targets))["ndcg@1"] == 0.0
    # a tie with one other item: rank 2, the target does not win it
    assert target_ranks(torch.tensor([[0.5, 0.5, 0.1]]), torch.tensor([1])).tolist() == [2]
    assert candidate_ranks(torch.tensor([[0.3, 0.3, 0.3]]), torch.tensor([0]), torch.tensor([[1, 2]])).tolist() == [3]


def test_nan_scores_rank_last():
    scores = torch.tensor([[float("nan"), 0.2, 0.1], [0.3, float("nan"), float("nan")]])
    assert target_ranks(scores, torch.tensor([0, 0])).tolist() == [3, 1]
    assert target_ranks(torch.full((1, 4), float("nan")), torch.tensor([2])).tolist() == [4]


def test_candidate_ranks_hand_example():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.7, 0.2]])
    # target column 2 (0.5) among candidates 1 (0.9), 4 (0.2), 2 (itself, ignored), 3 (0.7, masked off)
    ranks = candidate_ranks(scores, torch.tensor([2]), torch.tensor([[1, 4, 2, 3]]), torch.tensor([[True, True, True, False]]))
    assert ranks.tolist() == [2]


class HashScorer:
    """Deterministic scores from the window contents (a stand-in for a model)."""

    def __init__(self, n_items: int, seed: int = 0):
        self.weights = torch.tensor(np.random.default_rng(seed).normal(size=(n_items + 2, n_items)), dtype=torch.float32)

    def score_all(self, seqs: torch.Tensor, context=None) -> torch.Tensor:
        return self.weights[seqs].sum(dim=1) + 0.01 * seqs[:, -1:].float()


@pytest.mark.parametrize("exclude", ["history", "window", "none"])
def test_evaluate_model_matches_numpy_reference(exclude):
    """Encore's metrics against a plain-Python implementation on the same score matrix, for each
    exclusion protocol (whole history before the target, the input window only, nothing)."""
    table = toy_data(n_users=30, n_items=25, skip_rate=0.4, seed=2, min_len=10, max_len=16)
    rows = {r["user_id"]: r for r in __import__("toy_data").toy_sequence_table(
        n_users=30, n_items=25, skip_rate=0.4, seed=2, min_len=10, max_len=16).to_pylist()}
    data = table
    split = data.split("test", max_seq_len=10)
    scorer = HashScorer(data.n_items)
    got = evaluate_model(scorer, split, data.n_items, exclude=exclude, batch_size=7)

    scores = scorer.score_all(split.seq).numpy()
    ranks, skip_rr = [], []
    longer = 0
    for u in range(len(split)):
        seq, skip, target = split.seq[u].numpy(), split.is_skip[u].numpy(), int(split.target[u]) - 1
        window = {int(i) - 1 for i in seq if i}
        row = rows[data.user_ids[int(split.user_index[u])]]
        history = {int(data.vocab.encode([i])[0]) - 1 for i in row["item_ids"][: row["test_idx"]]}
        longer += history != window
        positive = {int(i) - 1 for i, s in zip(seq, skip) if i and not s}
        skipped_only = {int(i) - 1 for i, s in zip(seq, skip) if i and s} - positive
        excluded = {"history": history, "window": window, "none": set()}[exclude] - {target}
        ranks.append(brute_force_rank(scores[u], target, excluded))
        if skipped_only:
            skip_rr.append(np.mean([1 / optimistic_rank(scores[u], j, positive) for j in skipped_only]))
    r = np.array(ranks, dtype=float)
    assert longer > 5  # many histories reach beyond the window, so the protocols differ
    assert got["n_users"] == len(split)
    assert got["hr@10"] == pytest.approx(np.mean(r <= 10), abs=1e-6)
    assert got["ndcg@10"] == pytest.approx(np.mean(np.where(r <= 10, 1 / np.log2(r + 1), 0)), abs=1e-6)
    assert got["mrr"] == pytest.approx(np.mean(1 / r), abs=1e-6)
    assert got["skip_users"] == len(skip_rr) > 5
    assert got["skip_mrr"] == pytest.approx(np.mean(skip_rr), abs=1e-6)


def test_registry_names_match_the_model_classes():
    """The DAG's enum (training.registry, no torch import) lists exactly the trainable models."""
    from training.baselines import BASELINES
    from training.models import MODELS
    from training.registry import BASELINE_MODELS, SEQUENCE_MODELS

    assert set(SEQUENCE_MODELS) == set(MODELS)
    assert set(BASELINE_MODELS) == set(BASELINES)
