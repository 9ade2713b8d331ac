"""Errors that mean "the input is wrong", not "the machine had a bad moment".

A night that fails with one of these fails the same way on every retry (a bad
file, a bad setting, a date with no data, a check that failed on the data), so
the orchestrator must not retry it: the DAG turns them into
``AirflowFailException``. Everything else (a lock, a lost connection, a killed
worker) stays retryable.
"""

from __future__ import annotations


class EncoreInputError(ValueError):
    """Deterministic failure caused by the input data, configuration or parameters."""


class ConfigError(EncoreInputError):
    """A configuration value or run parameter is missing, malformed or out of range."""


class RawFileError(EncoreInputError):
    """A landing file is unreadable or breaks the raw contract (names file and column)."""


class NoEventsError(EncoreInputError):
    """A night has nothing new to learn from: no landing rows, or every row quarantined."""
