"""Running a Great Expectations (1.x) suite on a pandas DataFrame and collecting failing rows."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import pandas as pd

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
import great_expectations as gx  # noqa: E402

log = logging.getLogger(__name__)
CHECK = "encore_check"  # meta key: the check's index in the caller's list


@dataclass
class ExpectationOutcome:
    name: str  # the reason written to quarantine / the error message
    success: bool
    unexpected_count: int
    failing_rows: list[int] = field(default_factory=list)  # positional row numbers


_context = None


def _get_context():
    global _context
    if _context is None:
        _context = gx.get_context(mode="ephemeral")
        _context.variables.progress_bars = gx.data_context.types.base.ProgressBarsConfig(globally=False)
    return _context


def run_suite(
    df: pd.DataFrame, suite_name: str, expectations: list[tuple[str, object]]
) -> list[ExpectationOutcome]:
    """Validate ``df`` against ``(reason, expectation)`` pairs; return one outcome per pair.

    ``failing_rows`` are positions into ``df`` (the frame is re-indexed 0..n-1 for GE).
    """
    context = _get_context()
    frame = df.reset_index(drop=True)
    source = context.data_sources.add_or_update_pandas(f"{suite_name}_source")
    asset = source.add_dataframe_asset(f"{suite_name}_{len(source.assets)}")
    batch = asset.add_batch_definition_whole_dataframe("whole").get_batch(batch_parameters={"dataframe": frame})
    suite = gx.ExpectationSuite(name=suite_name)
    for index, (_, expectation) in enumerate(expectations):
        suite.add_expectation(expectation.copy(update={"meta": {CHECK: index}}))
    result = batch.validate(suite, result_format={"result_format": "COMPLETE"})
    # GX does not keep the suite's order in its results (failed ones may come first): pair each
    # result with its check by the index in its meta, never by position
    by_index = {res.expectation_config.meta[CHECK]: res for res in result.results}
    outcomes = []
    for index, (reason, _) in enumerate(expectations):
        res = by_index[index]
        if (res.exception_info or {}).get("raised_exception"):
            raise RuntimeError(f"{suite_name}: expectation {reason!r} could not run: "
                               f"{res.exception_info.get('exception_message')}")
        rows = res.result.get("unexpected_index_list") or []
        outcomes.append(
            ExpectationOutcome(
                name=reason,
                success=bool(res.success),
                unexpected_count=int(res.result.get("unexpected_count") or 0),
                failing_rows=[int(r) for r in rows],
            )
        )
        if not res.success:
            log.info("expectation failed: %s (%s rows)", reason, outcomes[-1].unexpected_count)
    return outcomes


class ValidationFailed(RuntimeError):
    """A gating suite failed: the message lists each failed expectation."""

    def __init__(self, suite_name: str, failed: list[ExpectationOutcome]):
        self.failed = failed
        details = "; ".join(f"{o.name} ({o.unexpected_count} rows)" for o in failed)
        super().__init__(f"{suite_name}: {len(failed)} expectation(s) failed: {details}")


def require(suite_name: str, outcomes: list[ExpectationOutcome]) -> None:
    failed = [o for o in outcomes if not o.success]
    if failed:
        raise ValidationFailed(suite_name, failed)
