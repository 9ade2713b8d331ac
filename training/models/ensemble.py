"""Seed ensemble: several models of one family, trained from different seeds, scored as one.

The ensemble's next-item score is the mean of the members' log-softmax scores, the log of the
geometric mean of their next-item distributions (raw scores are not averaged: their scales
differ between members). It is a model like the others for inference, bundles, evaluation and
the outcome models (``score_all``); members are trained one by one (``training.specs``), never
the ensemble as a whole.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import nn

from training.data import SequenceBatch


@dataclass
class SeedEnsembleConfig:
    n_items: int
    max_seq_len: int = 50
    member_model: str = "sasrec"  # a training.models.MODELS name
    member_configs: list[dict] = field(default_factory=list)  # each member's config dataclass values


class SeedEnsemble(nn.Module):
    def __init__(self, config: SeedEnsembleConfig, members: list[nn.Module] | None = None):
        super().__init__()
        from training.models import MODELS  # the registry imports this module

        self.config = config
        if members is None:
            config_cls, model_cls = MODELS[config.member_model]
            members = [model_cls(config_cls(**values)) for values in config.member_configs]
        if not members:
            raise ValueError("a seed ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    @classmethod
    def of(cls, members: list[nn.Module], member_model: str, n_items: int, max_seq_len: int) -> "SeedEnsemble":
        """The ensemble of trained ``members`` (``member_model`` models), its config read from theirs."""
        config = SeedEnsembleConfig(n_items, max_seq_len, member_model,
                                    [dataclasses.asdict(member.config) for member in members])
        return cls(config, members)

    def score_all(self, seqs: torch.Tensor, context: SequenceBatch | None = None) -> torch.Tensor:
        scores = [member.score_all(seqs, context=context).float().log_softmax(-1) for member in self.members]
        return torch.stack(scores).mean(0)
