"""Fault-injection points for the fault matrix (``benchmarks/chaos.py``); inert unless asked for.

Some faults must strike at one exact moment, e.g. ``kill -9`` while the publish transaction is
open, after its DELETE and before its INSERT. With ``ENCORE_FAULT_PAUSE=<point>`` in its
environment, a process that reaches ``pause("<point>")`` writes its pid to the file named by
``ENCORE_FAULT_SIGNAL`` (if set) and then waits there, so the matrix can kill it at that moment.
Without the variable ``pause`` returns at once and changes nothing.

Points: ``publish_after_delete`` (``encore.core.warehouse``: inside the publish transaction).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

PAUSE_ENV = "ENCORE_FAULT_PAUSE"
SIGNAL_ENV = "ENCORE_FAULT_SIGNAL"
MAX_PAUSE_S = 600  # a paused process nobody kills gives up, so a broken test cannot hang a night for ever


def pause(point: str) -> None:
    """Wait here (to be killed) when ``ENCORE_FAULT_PAUSE`` names ``point``; otherwise do nothing."""
    if os.environ.get(PAUSE_ENV) != point:
        return
    if os.environ.get(SIGNAL_ENV):
        Path(os.environ[SIGNAL_ENV]).write_text(f"{os.getpid()}\n")
    time.sleep(MAX_PAUSE_S)
    raise RuntimeError(f"fault point {point!r} ({PAUSE_ENV}) was not killed within {MAX_PAUSE_S} s")
