"""Where a Spark run's CPU goes, by operator, from a JDK Flight Recorder recording.

``python -m benchmarks.spark_bench --profile DIR`` starts the Spark driver JVM (local mode: the
executor threads run in it) with ``-XX:StartFlightRecording`` (``spark.java_options``).
Here the recording's CPU samples are read with the JDK's ``jfr`` tool and each sample is
given to the innermost frame that names an operator: Parquet writing, hash aggregation,
the sort, ... Samples in whole-stage generated code outside those operators (projections,
filters, row copies) form their own group. The samples cover Java threads only, so GC
pauses and the JIT compiler threads' time are reported beside them.

``python -m benchmarks.jvm_profile RECORDING.jfr`` prints the table for one recording.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

# (operator, substrings of "class.method" frame names), matched from the innermost frame out.
# Only frames that do an operator's own per-row work count: loops that pull their input
# (a shuffle writer, the cache builder, a file writer's row loop) would otherwise claim the
# work of everything upstream.
OPERATORS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("parquet write", ("ParquetWriteSupport", "org.apache.parquet.column", "org.apache.parquet.io",
                       "InternalParquetRecordWriter", "ParquetOutputWriter", "SingleDirectoryDataWriter.write",
                       "writeWithMetrics")),
    ("parquet read", ("VectorizedParquetRecordReader", "VectorizedColumnReader", "ParquetFileReader",
                      "VectorizedRleValuesReader", "VectorizedPlainValuesReader", "ParquetVectorUpdater",
                      "DictionaryFilter")),
    ("cache build", ("ColumnBuilder", "ColumnStats", "ColumnType.append", "SizeEstimator")),
    ("cache scan", ("ColumnAccessor", "ColumnarIterator", "compression.PassThrough", "ColumnType.extract")),
    ("sort", ("UnsafeInMemorySorter", "UnsafeExternalSorter", "UnsafeExternalRowSorter.insertRow",
              "RowComparator", "TimSort", "RadixSort", "SpecificOrdering")),
    ("window functions", ("WindowFunctionFrame", "OffsetWindowFunctionFrame", "ExternalAppendOnlyUnsafeRowArray",
                          "WindowEvaluatorFactory$WindowPartitionEvaluator$$anon$1.next")),
    ("collect_list / collect_set", ("aggregate.Collect", "ObjectAggregationMap", "TypedImperativeAggregate",
                                    "AggregationIterator$$anonfun", "scala.collection.mutable.HashSet")),
    ("hash aggregation", ("hashAgg_", "UnsafeFixedWidthAggregationMap", "BytesToBytesMap")),
    ("interpreted expressions (structs, generic rows)", ("CreateNamedStruct.eval", "BoundReference.eval",
                                                         "GenericInternalRow", "IsNotNull.eval")),
    ("array functions", ("ArrayExcept", "SortArray", "ArrayTransform", "SQLOpenHashSet", "ArraySort",
                         "expressions.Slice", "GenericArrayData", "OpenHashSet")),
    ("explode", ("generate_doConsume", "expressions.Explode", "expressions.PosExplode")),
    ("shuffle write", ("DiskBlockObjectWriter", "ShuffleExternalSorter", "ShuffleExchangeExec",
                       "UnsafeRowSerializerInstance$$anon$1.write")),
    ("shuffle read", ("ShuffleBlockFetcherIterator", "BlockStoreShuffleReader", "UnsafeRowSerializerInstance$$anon$2")),
    ("planning, class loading, code generation", ("ClassLoader", "catalyst.analysis", "catalyst.optimizer",
                                                  "CodeGenerator", "janino", "catalyst.parser", "antlr",
                                                  "java.util.jar.", "java.util.zip.")),
)
GENERATED_CODE = "generated code (projections, filters, row copies)"
OTHER = "other (scheduler, py4j, JVM)"
EVENT_TYPES = ("jdk.ExecutionSample", "jdk.GarbageCollection", "jdk.CompilerStatistics")


def read_recording(recording: str | Path) -> list[dict]:
    """The recording's CPU samples, GC and JIT statistics events, as ``jfr print --json`` gives them."""
    jfr = shutil.which("jfr") or os.path.join(os.environ.get("JAVA_HOME", ""), "bin", "jfr")
    if not os.path.exists(jfr):
        raise FileNotFoundError("the JDK's `jfr` tool was not found on PATH or in $JAVA_HOME/bin (a JRE has none)")
    printed = subprocess.run([jfr, "print", "--json", "--events", ",".join(EVENT_TYPES), str(recording)],
                             capture_output=True, text=True, check=True)
    return json.loads(printed.stdout)["recording"]["events"]


def summarize(recording: str | Path) -> dict:
    """CPU samples by operator, plus what the samples do not show: GC pauses and JIT compile time."""
    events = read_recording(recording)
    stacks = [frame_names(e) for e in events if e["type"] == "jdk.ExecutionSample"]
    compiler = [e["values"] for e in events if e["type"] == "jdk.CompilerStatistics"]
    return {
        "cpu_samples": len(stacks),
        "cpu_by_operator": operator_shares(stacks),
        "gc_pause_seconds": round(sum(seconds(e["values"]["sumOfPauses"])
                                      for e in events if e["type"] == "jdk.GarbageCollection"), 2),
        # cumulative over the JIT compiler threads, taken at the last periodic snapshot
        "jit_compile_seconds": round(seconds(compiler[-1]["totalTimeSpent"]), 2) if compiler else None,
    }


def seconds(duration: str) -> float:
    """An ISO-8601 duration as ``jfr`` prints them (``PT2M52.725S``) in seconds."""
    match = re.fullmatch(r"PT(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?", duration)
    if not match:
        raise ValueError(f"not a jfr duration: {duration!r}")
    hours, minutes, secs = match.groups()
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(secs or 0)


def frame_names(event: dict) -> list[str]:
    """``package.Class.method`` names of one ``jfr print --json`` sample, innermost first."""
    trace = event["values"].get("stackTrace") or {"frames": []}
    return [f'{f["method"]["type"]["name"].replace("/", ".")}.{f["method"]["name"]}' for f in trace["frames"]]


def operator_of(stack: list[str]) -> str:
    for frame in stack:
        for operator, needles in OPERATORS:
            if any(needle in frame for needle in needles):
                return operator
    return GENERATED_CODE if any("GeneratedClass" in frame for frame in stack) else OTHER


def operator_shares(stacks: list[list[str]]) -> dict[str, float]:
    """Share of the samples per operator, largest first."""
    counts = collections.Counter(operator_of(stack) for stack in stacks)
    return {operator: n / len(stacks) for operator, n in counts.most_common()}


def markdown(shares: dict[str, float], n_samples: int) -> str:
    lines = [f"| operator (innermost frame) | share of {n_samples:,} CPU samples |", "|---|---:|"]
    lines += [f"| {operator} | {share:.1%} |" for operator, share in shares.items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recording", help="a .jfr file")
    summary = summarize(parser.parse_args().recording)
    print(markdown(summary["cpu_by_operator"], summary["cpu_samples"]))
    print(f"\nGC pauses {summary['gc_pause_seconds']} s, JIT compilation {summary['jit_compile_seconds']} s")


if __name__ == "__main__":
    main()
