"""Pausing the cyclic garbage collector around a burst of allocation.

Building thousands of rows at once (a bulk import's chunk, a feedback batch) allocates
enough to trigger the collector many times, and each full collection walks every live
object of the process: measured, half the time of validating an import row. The rows
hold no reference cycles worth collecting there and then. Paused for at most one chunk's
work (well under a second; reference counting still frees everything acyclic), then it
runs as usual.

A pipelined bulk import (bulk/runner.py) keeps chunks of staged rows alive while others
are written, and a feedback call its thousand items' rows, sketches and candidates:
young collections stay cheap, but every full one walks all of them. There full
collections are deferred for the import or the call (`full_collections_deferred`); the
young generations are still collected, so short-lived cycles (a request's, say) still go.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_deferring = 0
_saved_threshold = 0
_lock = threading.Lock()
# Collections of generation 1 between two full ones: none during a deferral.
_NEVER = 2**31 - 1


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


@contextmanager
def full_collections_deferred() -> Iterator[None]:
    """No full collection while any holder is inside; the first in sets the threshold,
    the last out puts it back (imports may overlap)."""
    global _deferring, _saved_threshold
    with _lock:
        if _deferring == 0:
            young, middle, _saved_threshold = gc.get_threshold()
            gc.set_threshold(young, middle, _NEVER)
        _deferring += 1
    try:
        yield
    finally:
        with _lock:
            _deferring -= 1
            if _deferring == 0:
                young, middle, _ = gc.get_threshold()
                gc.set_threshold(young, middle, _saved_threshold)
