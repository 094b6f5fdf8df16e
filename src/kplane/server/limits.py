"""Bounding concurrent work: at most N requests in flight, as kube-apiserver does.

Read-only and mutating requests have separate budgets (upstream's defaults: 400 and 200);
long-running requests (watches) are not counted, since thousands may stay open. A request
over budget is refused at once with 429 and ``Retry-After``, which client-go honours by
retrying; queueing it would only let latency grow without bound.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

from kplane.apimachinery import errors

DEFAULT_MAX_READONLY = 400
DEFAULT_MAX_MUTATING = 200
_READONLY_VERBS = frozenset({"get", "list"})


class _Slot:
    """One admitted request's hold on its budget, released when its block ends."""

    __slots__ = ("_inflight", "_readonly")

    def __init__(self, inflight: dict[bool, int], readonly: bool) -> None:
        self._inflight = inflight
        self._readonly = readonly

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        self._inflight[self._readonly] -= 1


# Watches hold nothing.
_UNCOUNTED: nullcontext[None] = nullcontext()


class InflightLimiter:
    def __init__(self, *, max_readonly: int = DEFAULT_MAX_READONLY,
                 max_mutating: int = DEFAULT_MAX_MUTATING) -> None:
        self._limits = {True: max_readonly, False: max_mutating}
        self._inflight = {True: 0, False: 0}

    def admit(self, verb: str) -> AbstractContextManager[None]:
        """Hold one slot for the duration of a request (``with limiter.admit(verb):``);
        raises 429 when none is free. A class, not a generator: every request takes one."""
        if verb == "watch":
            return _UNCOUNTED
        readonly = verb in _READONLY_VERBS or verb == ""
        if self._inflight[readonly] >= self._limits[readonly]:
            raise errors.too_many_requests(
                "Too many requests, please try again later.", retry_after_seconds=1)
        self._inflight[readonly] += 1
        return _Slot(self._inflight, readonly)

    def inflight(self, *, readonly: bool) -> int:
        return self._inflight[readonly]
