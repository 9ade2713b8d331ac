"""Sequence models. Every model class implements the same small interface so the
trainer, losses, metrics and inference work with any of them:

* ``config`` — its config dataclass (``n_items`` first field; saved with the weights);
* ``encode(seqs [B, L], context=None) -> hidden [B, L, D]``; ``context`` is the batch the
  windows come from (skip flags, completion, user): callers always pass it, a model that reads
  no per-event context ignores it;
* ``predict_vectors(hidden) -> [..., D]`` — dotted with ``item_embeddings()``;
* ``item_embeddings() -> [n_items + 2, D]`` (row = item id; 0 padding, n_items + 1 mask);
* ``score_all(seqs [B, L], context=None) -> [B, n_items]`` — next-item scores, column c = item id c + 1;
* ``training_inputs(batch) -> (inputs [B, L], targets [B, L])`` — 0 = no target.

``MODELS`` maps a CLI/registry name to (config class, model class); a new model
registers itself here. ``ensemble.SeedEnsemble`` (several trained models of one family scored
as one, ``training.ensemble_seeds``) only scores, so it is not a trainable entry.
"""

from __future__ import annotations

import dataclasses

from torch import nn

from training.models.attrec import AttRec, AttRecConfig, AttRecNegConfig
from training.models.bert4rec import BERT4Rec, BERT4RecConfig
from training.models.sasrec import SASRec, SASRecConfig
from training.models.smoe_bst import SMoEBST, SMoEBSTConfig

MODELS: dict[str, tuple[type, type[nn.Module]]] = {
    "sasrec": (SASRecConfig, SASRec),
    "bert4rec": (BERT4RecConfig, BERT4Rec),
    "attrec": (AttRecConfig, AttRec),
    "attrec_neg": (AttRecNegConfig, AttRec),  # skipped items as extra hinge negatives
    "smoe_bst": (SMoEBSTConfig, SMoEBST),
}


def build_model(name: str, n_items: int, **settings) -> nn.Module:
    """Instantiate ``name`` with settings of its config dataclass (an unknown setting is an error)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {sorted(MODELS)}")
    config_cls, model_cls = MODELS[name]
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(f"{name}: unknown settings {unknown}; known: {sorted(known - {'n_items'})}")
    return model_cls(config_cls(n_items=n_items, **settings))


__all__ = ["MODELS", "build_model", "AttRec", "AttRecConfig", "SASRec", "SASRecConfig", "BERT4Rec", "BERT4RecConfig", "SMoEBST", "SMoEBSTConfig"]
