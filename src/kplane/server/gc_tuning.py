"""How the server's process sets up Python's cyclic garbage collector once it has started.

Serving one write allocates a few hundred short-lived containers (the decoded body, field
sets, managed fields, the response) that reference counting frees. With Python's default
young-generation threshold of 700 a collection runs every couple of requests, and the
objects of requests still in flight are promoted each time; that promotion is what
triggers the full collections that walk the whole heap, the watch cache included. A
larger young generation lets in-flight objects die young, and freezing what start-up
built (modules, schemas, the loaded cache) keeps it out of every later full collection.
Cycles are still collected; garbage in them only waits a little longer.
"""

from __future__ import annotations

import gc

# Tracked container allocations between young collections (Python's default is 700).
YOUNG_THRESHOLD = 20_000
# Young collections per middle one, and middle ones per full one (defaults 10 and 10).
MIDDLE_THRESHOLD = 20
OLD_THRESHOLD = 20


def settle_after_startup() -> None:
    """Collect start-up garbage, freeze what survives, and widen the young generation."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
