"""The fault matrix's fast cases (``benchmarks/chaos.py``): every fault that needs no Airflow night,
injected into a small state dir, must end clean (nothing lost, nothing half written, the previous
state intact, the cause named, a re-run identical). The full matrix with real nights: ``make chaos``."""

from __future__ import annotations

import os

import pytest

from benchmarks import chaos

FAST_CASES = [c for c in chaos.CASES if chaos.FAST in c.modes]


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    h = chaos.Harness(tmp_path_factory.mktemp("chaos"), nights=False, say=lambda line: None)
    h.prepare()
    return h


@pytest.mark.parametrize("case", FAST_CASES, ids=[c.run.__name__ for c in FAST_CASES])
def test_fault_ends_clean(harness, case):
    if case.run is chaos.full_disk and os.geteuid() != 0:
        pytest.skip("mounting a tmpfs lake needs root")
    result = chaos.run_case(harness, case)
    assert result.clean, f"{chaos.table([result])}\nproblems: {result.problems}"


def test_every_case_has_a_distinct_name_and_runs_somewhere():
    assert len({c.run.__name__ for c in chaos.CASES}) == len({c.name for c in chaos.CASES}) == len(chaos.CASES)
    assert all(set(c.modes) <= {chaos.FAST, chaos.NIGHTS} and c.modes for c in chaos.CASES)
