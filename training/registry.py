"""The names of every model the nightly can train, without importing torch.

The DAG's ``models`` param is an enum of these (the DAG file is parsed often, so it
must stay cheap); ``training.models.MODELS`` and ``training.baselines.BASELINES``
hold the classes and must list exactly these names (``tests/test_training_models.py``).
"""

SEQUENCE_MODELS = ("sasrec", "bert4rec", "attrec", "attrec_neg", "smoe_bst")
BASELINE_FAMILIES = ("most_pop", "most_pop_recent", "item_knn", "session_knn", "wrmf", "bpr")
BASELINE_MODELS = BASELINE_FAMILIES + tuple(f"{name}_neg" for name in BASELINE_FAMILIES)
MODEL_NAMES = SEQUENCE_MODELS + BASELINE_MODELS
