"""Distilling a seed ensemble into one SASRec (benchmarks.ensemble_distillation)."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from benchmarks.ensemble_distillation import EnsembleDistillation, distillation_loss
from toy_data import toy_data
from training.models.sasrec import SASRec, SASRecConfig
from training.trainer import Trainer, TrainSettings


def test_distillation_loss_is_the_tempered_kl_scaled_by_t_squared():
    student = torch.zeros(1, 2)  # uniform
    teacher = torch.log(torch.tensor([[0.75, 0.25]]))
    # KL([0.75, 0.25] || [0.5, 0.5]) = 0.75 ln 1.5 + 0.25 ln 0.5
    assert distillation_loss(student, teacher, 1.0).item() == pytest.approx(0.75 * math.log(1.5) + 0.25 * math.log(0.5))
    # T = 2: the teacher becomes sqrt(p) normalised, [0.634, 0.366]; the loss is 4 x its KL to uniform
    q = [math.sqrt(0.75) / (math.sqrt(0.75) + math.sqrt(0.25)), math.sqrt(0.25) / (math.sqrt(0.75) + math.sqrt(0.25))]
    expected = 4 * sum(p * math.log(p / 0.5) for p in q)
    assert distillation_loss(student, teacher, 2.0).item() == pytest.approx(expected, rel=1e-5)  # float32
    assert distillation_loss(teacher, teacher, 3.0).item() == pytest.approx(0.0, abs=1e-5)


def _settings(**values):
    base = dict(loss="full_softmax", contrastive="item", max_seq_len=8, batch_size=8, epochs=2, patience=2,
                device="cpu", progress=False, seed=0)
    return TrainSettings(**{**base, **values})


def test_a_student_equal_to_its_teachers_has_nothing_to_learn_from_them():
    data = toy_data(n_users=16, n_items=12, seed=1)
    student = SASRec(SASRecConfig(n_items=data.n_items, max_seq_len=8, hidden=16, layers=1, heads=2, dropout=0.0,
                                  prediction_layer=False))
    student.eval()
    objective = EnsembleDistillation([copy.deepcopy(student), copy.deepcopy(student)], _settings(), 0.9, 2.0)
    batch = data.split("train", 8).take(slice(0, 8))
    parts = objective(student, batch)
    assert parts["kd"].item() == pytest.approx(0.0, abs=1e-6)
    # the total is (1 - alpha) NLL + alpha KD + cl_weight InfoNCE
    expected = 0.1 * parts["nll"] + 0.9 * parts["kd"] + _settings().cl_weight * parts["cl_loss"]
    assert parts["loss"].item() == pytest.approx(expected.item(), rel=1e-6)


def test_a_student_trains_against_a_frozen_teacher_and_only_the_student_moves():
    data = toy_data(n_users=24, n_items=12, seed=2)
    config = SASRecConfig(n_items=data.n_items, max_seq_len=8, hidden=16, layers=1, heads=2, prediction_layer=False)
    torch.manual_seed(0)
    teachers = [SASRec(config), SASRec(config)]
    before = [copy.deepcopy(t.state_dict()) for t in teachers]
    settings = _settings()
    trainer = Trainer(SASRec(config), data, settings, objective=EnsembleDistillation(teachers, settings, 0.5, 1.0))
    result = trainer.fit(resume=False)
    assert result.best_epoch >= 1 and math.isfinite(result.best_valid["ndcg@10"])
    for teacher, state in zip(teachers, before):
        assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in state.items())


def test_distillation_rejects_losses_it_does_not_define():
    with pytest.raises(ValueError, match="full_softmax"):
        EnsembleDistillation([], _settings(loss="sampled_softmax"), 0.9, 2.0)
    with pytest.raises(ValueError, match="alpha"):
        EnsembleDistillation([], _settings(), 1.5, 2.0)
