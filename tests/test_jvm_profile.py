"""CPU samples of a Flight Recorder recording grouped by Spark operator (benchmarks.jvm_profile)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from benchmarks.spark_bench import markdown
from benchmarks.jvm_profile import (
    GENERATED_CODE,
    OTHER,
    frame_names,
    operator_of,
    operator_shares,
    read_recording,
    seconds,
    summarize,
)


def sample(*frames: str) -> dict:
    """One event as ``jfr print --json`` writes it; frames innermost first, as ``pkg/Class.method``."""
    def frame(name: str) -> dict:
        cls, method = name.rsplit(".", 1)
        return {"method": {"type": {"name": cls}, "name": method}}
    return {"values": {"stackTrace": {"frames": [frame(f) for f in frames]}}}


PARQUET = "org/apache/parquet/column/impl/ColumnWriterBase.write"
AGG = "org/apache/spark/sql/catalyst/expressions/GeneratedClass$GeneratedIteratorForCodegenStage1.hashAgg_doConsume_0$"
COPY = "org/apache/spark/unsafe/Platform.copyMemory"
GENERATED = "org/apache/spark/sql/catalyst/expressions/GeneratedClass$GeneratedIteratorForCodegenStage2.processNext"
WRITER = "org/apache/spark/sql/execution/datasources/FileFormatWriter.executeTask"
CACHE_BUILDER = "org/apache/spark/storage/memory/MemoryStore.putIterator"
COLUMN_BUILDER = "org/apache/spark/sql/execution/columnar/NullableColumnBuilder.appendFrom"


def test_a_sample_goes_to_its_innermost_operator():
    # a row copy inside the aggregation that feeds a Parquet writer is aggregation work
    assert operator_of(frame_names(sample(COPY, AGG, WRITER))) == "hash aggregation"
    assert operator_of(frame_names(sample(PARQUET, WRITER))) == "parquet write"
    # loops that pull their input do not claim its work: the file writer's, the cache builder's
    assert operator_of(frame_names(sample(COPY, GENERATED, WRITER))) == GENERATED_CODE
    assert operator_of(frame_names(sample(COPY, GENERATED, CACHE_BUILDER))) == GENERATED_CODE
    assert operator_of(frame_names(sample(COLUMN_BUILDER, CACHE_BUILDER))) == "cache build"
    assert operator_of(frame_names(sample(COPY, GENERATED))) == GENERATED_CODE
    assert operator_of(frame_names(sample(COPY, "java/lang/Thread.run"))) == OTHER
    assert frame_names({"values": {}}) == [] and operator_of([]) == OTHER  # a sample without a stack


def test_shares_count_samples_per_operator_largest_first():
    stacks = [frame_names(s) for s in (
        sample(COPY, AGG), sample(AGG), sample(PARQUET), sample(COPY, GENERATED),
        sample(COPY, AGG), sample(PARQUET, WRITER), sample(AGG), sample(COPY),
    )]
    shares = operator_shares(stacks)
    assert shares == {"hash aggregation": 0.5, "parquet write": 0.25, GENERATED_CODE: 0.125, OTHER: 0.125}
    assert list(shares) == ["hash aggregation", "parquet write", GENERATED_CODE, OTHER]


def test_bench_table_lists_operators_per_profiled_size():
    base = {"engine": "spark", "job_seconds": 10.0, "wall_seconds": 12.0, "peak_rss_mb": 100,
            "stage_seconds": {"sessionize": 5.0}, "rows": {}}
    results = [
        {**base, "events": 1000, "cpu_samples": 40, "cpu_by_operator": {"sort": 0.75, "parquet write": 0.25},
         "gc_pause_seconds": 0.5, "jit_compile_seconds": 3.25},
        {**base, "events": 2000, "cpu_samples": 80, "cpu_by_operator": {"parquet write": 0.875, "sort": 0.125},
         "gc_pause_seconds": 1.0, "jit_compile_seconds": 4.0},
    ]
    table = markdown(results).split("\n\n")[-1].splitlines()
    assert table[0] == ("| Spark CPU by operator (innermost frame) | 1,000 events (40 samples) "
                        "| 2,000 events (80 samples) |")
    assert table[2:] == ["| parquet write | 25.0% | 87.5% |", "| sort | 75.0% | 12.5% |",
                         "| not in the samples: GC pauses | 0.5 s | 1.0 s |",
                         "| not in the samples: JIT compilation | 3.25 s | 4.0 s |"]


def test_jfr_durations_in_seconds():
    assert seconds("PT0.048062889S") == pytest.approx(0.048062889)
    assert seconds("PT2M52.725S") == pytest.approx(172.725)
    assert seconds("PT1H0M2S") == 3602.0
    with pytest.raises(ValueError, match="not a jfr duration"):
        seconds("2.5s")


@pytest.mark.skipif(shutil.which("jfr") is None, reason="needs a JDK (java + jfr)")
def test_samples_of_a_real_recording(tmp_path):
    source = tmp_path / "Spin.java"
    source.write_text(  # calls that allocate: a counted loop of arithmetic is not sampled on one core
        "public class Spin { static long spin(int n) { long x = 0; for (int i = 0; i < n; i++)"
        " x += Integer.toString(i).hashCode(); return x; }"
        " public static void main(String[] a) { long end = System.nanoTime() + 1_500_000_000L, s = 0;"
        " while (System.nanoTime() < end) s += spin(100_000); System.out.println(s); } }"
    )
    recording = tmp_path / "spin.jfr"
    subprocess.run(["java", f"-XX:StartFlightRecording=filename={recording},settings=profile", str(source)],
                   check=True, capture_output=True)
    stacks = [frame_names(e) for e in read_recording(recording) if e["type"] == "jdk.ExecutionSample"]
    assert sum(any(frame == "Spin.spin" for frame in stack) for stack in stacks) > len(stacks) / 2
    summary = summarize(recording)
    assert summary["cpu_samples"] == len(stacks) > 50  # 10-20 ms sampling over 1.5 s of spinning
    assert summary["cpu_by_operator"][OTHER] > 0.5  # no Spark operator in it
    assert summary["jit_compile_seconds"] > 0 and summary["gc_pause_seconds"] >= 0
