"""Bounding concurrent work: at most N requests in flight, as kube-apiserver does.

Read-only and mutating requests have separate budgets (upstream's defaults: 400 and 200);
long-running requests (watches) are not counted, since thousands may stay open. A request
over budget is refused at once with 429 and ``Retry-After``, which client-go honours by
retrying; queueing it would only let latency grow without bound.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from kplane.apimachinery import errors

DEFAULT_MAX_READONLY = 400
DEFAULT_MAX_MUTATING = 200
_READONLY_VERBS = frozenset({"get", "list"})


class InflightLimiter:
    def __init__(self, *, max_readonly: int = DEFAULT_MAX_READONLY,
                 max_mutating: int = DEFAULT_MAX_MUTATING) -> None:
        self._limits = {True: max_readonly, False: max_mutating}
        self._inflight = {True: 0, False: 0}

    @contextmanager
    def admit(self, verb: str) -> Iterator[None]:
        """Hold one slot for the duration of a request; raises 429 when none is free."""
        if verb == "watch":
            yield
            return
        readonly = verb in _READONLY_VERBS or verb == ""
        if self._inflight[readonly] >= self._limits[readonly]:
            raise errors.too_many_requests(
                "Too many requests, please try again later.", retry_after_seconds=1)
        self._inflight[readonly] += 1
        try:
            yield
        finally:
            self._inflight[readonly] -= 1

    def inflight(self, *, readonly: bool) -> int:
        return self._inflight[readonly]
