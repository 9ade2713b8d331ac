"""Non-sequential baselines, each with and without negative feedback (seed 000:
does negative feedback help WRMF / BPR too?).

Every baseline has a config dataclass (``n_items`` first, ``max_seq_len`` for the
window it scores), ``fit(train_split, user_ids)`` and ``score_all(seqs, context=None)``,
so ``training.evaluation.evaluate_model`` and batch inference treat it like a
sequence model. ``BASELINES`` maps a registry / CLI name to (config class,
class, fixed settings); ``training.train.train_model`` fits and tracks them like
every other model (``training.specs.BaselineSpec``).
"""

from __future__ import annotations

import dataclasses

from training.baselines.knn import ItemKNN, ItemKNNConfig, SessionKNN, SessionKNNConfig
from training.baselines.matrix_factorization import BPR, WRMF, BPRConfig, WRMFConfig
from training.baselines.popularity import MostPopular, PopularityConfig

RECENT_EVENTS = 10

BASELINES: dict[str, tuple[type, type, dict]] = {}
for _name, _config, _cls, _fixed in [  # families as in training.registry.BASELINE_FAMILIES
    ("most_pop", PopularityConfig, MostPopular, {}),
    ("most_pop_recent", PopularityConfig, MostPopular, {"recent_events": RECENT_EVENTS}),
    ("item_knn", ItemKNNConfig, ItemKNN, {}),
    ("session_knn", SessionKNNConfig, SessionKNN, {}),
    ("wrmf", WRMFConfig, WRMF, {}),
    ("bpr", BPRConfig, BPR, {}),
]:
    BASELINES[_name] = (_config, _cls, _fixed)
    BASELINES[f"{_name}_neg"] = (_config, _cls, {**_fixed, "negative_feedback": True})


def build_baseline(name: str, n_items: int, **settings):
    """Instantiate ``name`` with settings of its config (an unknown setting is an error)."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; known: {sorted(BASELINES)}")
    config_cls, cls, fixed = BASELINES[name]
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(f"{name}: unknown settings {unknown}; known: {sorted(known - {'n_items'})}")
    return cls(config_cls(n_items=n_items, **{**fixed, **{k: v for k, v in settings.items() if v is not None}}))


__all__ = ["BASELINES", "build_baseline", "MostPopular", "ItemKNN", "SessionKNN", "WRMF", "BPR"]
