"""Pausing the cyclic garbage collector around a burst of allocation.

Building thousands of rows at once (a bulk import's chunk, a feedback batch) allocates
enough to trigger the collector many times, and each full collection walks every live
object of the process: measured, half the time of validating an import row. The rows
hold no reference cycles worth collecting there and then. Paused for at most one chunk's
work (well under a second; reference counting still frees everything acyclic), then it
runs as usual.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    if not gc.isenabled():  # nested, or turned off by the host
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
