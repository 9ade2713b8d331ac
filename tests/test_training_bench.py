"""The RecBole peer of the training benchmark sees exactly our split's events."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

from benchmarks.training_bench import write_recbole_inter
from training.data import SequenceData


def test_recbole_inter_stops_at_our_test_target(tmp_path):
    rows = [
        # a: test target = z (last positive); the skip after it is not part of any split
        {"user_id": "a", "item_ids": ["x", "y", "z", "w"], "is_skip": [False, False, False, True],
         "valid_idx": 1, "test_idx": 2},
        {"user_id": "b", "item_ids": ["y"], "is_skip": [False], "valid_idx": None, "test_idx": None},
        {"user_id": "c", "item_ids": ["w", "x", "y"], "is_skip": [True, False, False], "valid_idx": 1, "test_idx": 2},
    ]
    data = SequenceData.from_arrow(pa.Table.from_pylist(rows))
    path = tmp_path / "d" / "d.inter"
    assert write_recbole_inter(data, path) == 6
    assert path.read_text().splitlines() == [
        "user_id:token\titem_id:token\ttimestamp:float",
        "a\tx\t0", "a\ty\t1", "a\tz\t2",
        "c\tw\t0", "c\tx\t1", "c\ty\t2",
    ]


def test_training_flops_count_layers_attention_and_logits():
    from benchmarks.training_bench import sasrec_training_flops

    # d=2, 1 layer, max_len 3, 5 items: per token 2*(12*4 + 2*3*2) = 120, per target 2*2*5 = 20
    assert sasrec_training_flops(tokens=10, targets=4, hidden=2, layers=1, max_len=3, n_items=5) == 3 * (1200 + 80)
    assert sasrec_training_flops(10, 4, 2, 2, 3, 5) == 3 * (2400 + 80)  # layers scale the encoder only


def test_bf16_peak_by_gpu_name():
    from benchmarks.training_bench import bf16_peak_flops

    assert bf16_peak_flops("NVIDIA H100 80GB HBM3") == 989.4e12
    assert bf16_peak_flops("NVIDIA H100 PCIe") == 756.0e12
    assert bf16_peak_flops("NVIDIA H200") == 989.4e12
    assert bf16_peak_flops("NVIDIA A100-SXM4-80GB") == 312.0e12
    assert bf16_peak_flops("Tesla T4") is None  # unknown: no share reported


def test_benchmark_table_reports_share_of_peak_on_gpu_only():
    from benchmarks.training_bench import markdown, model_flops_utilization

    common = {"train_sequences_per_epoch": 100, "train_targets_per_epoch": 400, "train_tokens_per_epoch": 500,
              "epochs_run": 3, "peak_rss_mb": 900.0, "test_ours": {"ndcg@10": 0.1}}
    gpu = {**common, "epoch_seconds_median": 2.0, "train_flops_per_epoch": 4e12, "device": "cuda",
           "gpu": "NVIDIA H100 80GB HBM3", "bf16_peak_flops": 989.4e12, "peak_gpu_mb": 1536.0,
           "precision": "bf16 autocast"}
    cpu = {**common, "epoch_seconds_median": 4.0, "train_flops_per_epoch": 4e12, "device": "cpu", "precision": "fp32"}
    assert model_flops_utilization(gpu) == (2e12, pytest.approx(2e12 / 989.4e12))
    assert model_flops_utilization(cpu) == (1e12, None)
    gpu_row, cpu_row = markdown(gpu, None).splitlines()[2], markdown(cpu, None).splitlines()[2]
    assert gpu_row.endswith("| NVIDIA H100 80GB HBM3, bf16 autocast | 2.000 | 0.20% | 1536 |")
    assert cpu_row.endswith("| cpu, fp32 | 1.000 | n/a | n/a |")
    assert "| 2.00 | 50 | 200 | 250 | 3 |" in gpu_row


def test_cuda_request_without_a_gpu_is_refused(monkeypatch, capsys):
    import torch

    from benchmarks.training_bench import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exited:
        main(["--device", "cuda", "--skip-recbole"])
    assert exited.value.code == 2 and "--device cuda: torch sees no CUDA device here" in capsys.readouterr().err


def test_timestamp_ties_count_tied_targets_and_where_the_two_orders_disagree():
    from benchmarks.timestamp_ties import tie_report

    # user u: a at t1, then b and c in one second (t2); user v: d, e, f at three seconds.
    # Encore orders u's tie by event_id (c < b), the file (RecBole) by row (b before c):
    # u's test item is b for Encore and c for RecBole, its valid item c and b
    events = pd.DataFrame({
        "user_id": ["u", "u", "u", "v", "v", "v"],
        "item_id": ["a", "b", "c", "d", "e", "f"],
        "ts": [1, 2, 2, 1, 2, 3],
        "event_id": ["01", "09", "05", "02", "03", "04"],
    })
    report = tie_report(events)
    assert report == {"events": 6, "users": 2, "events_sharing_their_second": 2,
                      "mean_group_size_per_event": round(8 / 6, 3),
                      "tied_pairs_in_file_order": 1, "tied_pairs_with_increasing_item_id": 1,
                      "users_with_tied_test_event": 1, "users_whose_test_item_differs": 1,
                      "users_with_tied_valid_event": 1, "users_whose_valid_item_differs": 1}


def test_ensembles_from_earlier_reports_group_their_runs_in_seed_order(tmp_path):
    import json

    from benchmarks.nightly_models import earlier_runs

    def report(name, seeds, other=()):
        runs = {"sasrec_batch16": [{"seed": s, "run_id": f"r{s}"} for s in seeds],
                "sasrec_batch16_ensemble3": [{"seeds": list(seeds)}], **{o: [{"seed": 0}] for o in other}}
        (tmp_path / name).write_text(json.dumps({"runs": runs}))
        return str(tmp_path / name)

    reports = [report("b.json", [5, 3, 4], other=["session_knn"]), report("a.json", [0, 1, 2])]
    seeds, runs = earlier_runs(reports, ["sasrec_batch16"])
    assert seeds == [0, 1, 2, 3, 4, 5] and list(runs) == ["sasrec_batch16"]
    assert [r["run_id"] for r in runs["sasrec_batch16"]] == ["r0", "r1", "r2", "r3", "r4", "r5"]
    with pytest.raises(SystemExit, match="no runs of \\['sasrec'\\]"):
        earlier_runs(reports, ["sasrec"])


def test_nightly_models_rejects_an_unknown_configuration_unless_it_names_earlier_runs(capsys):
    from benchmarks.nightly_models import main

    with pytest.raises(SystemExit):
        main(["--configs", "sasrec_nope", "--models"])
    assert "unknown --configs ['sasrec_nope']" in capsys.readouterr().err


def test_nightly_models_table_shows_a_single_run_without_a_spread():
    from benchmarks.experiments import mean_std
    from benchmarks.nightly_models import COLUMNS, markdown

    def cells(values, seconds):
        return {c: mean_std(values) for c in COLUMNS} | {"seconds": mean_std(seconds)}

    table = markdown({"summary": {"sasrec": cells([0.30, 0.32], [100, 120]),
                                  "sasrec_ensemble2": cells([0.33], [220])}}).splitlines()
    assert table[0] == "| model | n | ndcg@10 | hr@10 | mrr@10 | skip_mrr | seconds |"
    assert table[2] == "| sasrec | 2 | " + " | ".join(["0.3100 ± 0.0141"] * 4) + " | 110 |"
    assert table[3] == "| sasrec_ensemble2 | 1 | " + " | ".join(["0.3300"] * 4) + " | 220 |"


def test_recbole_feedback_protocol_keeps_recboles_split_and_reads_the_ratings_skip_flags():
    from benchmarks.nightly_models import with_input_feedback

    def data(skips, valid, test, items=("x", "y", "z", "w")):
        return SequenceData.from_arrow(pa.Table.from_pylist([
            {"user_id": "a", "item_ids": list(items), "is_skip": skips, "valid_idx": valid, "test_idx": test},
            {"user_id": "b", "item_ids": ["y", "x"], "is_skip": [False, False], "valid_idx": None, "test_idx": 1},
        ]))

    # every rating an interaction: a's split is its last two events; the nightly marts flag w (rating <= 2)
    # and, under their own split, end a's history at the last positive
    every_rating = data([False] * 4, valid=2, test=3)
    rated = data([False, True, False, True], valid=0, test=2)
    both = with_input_feedback(every_rating, rated)
    assert both.is_skip.tolist() == [False, True, False, True, False, False]
    assert both.valid_idx.tolist() == [2, -1] and both.test_idx.tolist() == [3, 1]
    test = both.split("test", 4)
    assert test.target.tolist() == [1, 2]  # ids: w=1 x=2 y=3 z=4; w (a skip in the nightly marts) is a's target
    assert test.is_skip[0].tolist() == [False, False, True, False]  # inputs x y z: y was rated <= 2
    assert not every_rating.is_skip.any()  # the input data is left as it was
    with pytest.raises(ValueError, match="differ in items"):
        with_input_feedback(data([False] * 4, 2, 3, items=("x", "z", "y", "w")), rated)
