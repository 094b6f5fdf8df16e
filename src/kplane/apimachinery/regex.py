"""Regular expressions as Kubernetes evaluates them: RE2 syntax (Go's regexp), linear time.

Schemas (``pattern``) and CEL rules (``find``, ``findAll``) carry patterns that tenants
write. Python's backtracking ``re`` is the wrong engine for them twice over. It reads
another dialect: ``\\p{L}``, ``\\z`` and flags such as ``(?U)`` do not compile, and ``\\d``
matches every Unicode digit where Go matches ASCII ones. And it can take exponential time,
so one object checked against ``^(a+)+$`` would stall every tenant of the server. RE2 is
the syntax Go's regexp implements, and it matches in time linear in the input.
"""

from __future__ import annotations

import functools
from typing import Any, Protocol

import re2  # type: ignore[import-untyped]


class Match(Protocol):
    def group(self, index: int = 0) -> str: ...


class Pattern(Protocol):
    def search(self, text: str) -> Match | None: ...

    def finditer(self, text: str) -> Any: ...


class InvalidPatternError(ValueError):
    """The pattern does not compile; the message says why, in RE2's words."""


def _options() -> Any:
    options = re2.Options()
    # Errors come back as exceptions; RE2 would also print each one to stderr.
    options.log_errors = False
    return options


_OPTIONS = _options()


def compile_pattern(source: str) -> Pattern:
    """``source`` compiled; InvalidPatternError when RE2 (and so Go) would refuse it."""
    try:
        compiled: Pattern = re2.compile(source, _OPTIONS)
    except re2.error as error:
        reason = error.args[0] if error.args else error
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise InvalidPatternError(f"error parsing regexp: {reason}") from None
    return compiled


@functools.lru_cache(maxsize=512)
def cached_pattern(source: str) -> Pattern:
    """:func:`compile_pattern`, remembered: CEL rules pass the same literal every call."""
    return compile_pattern(source)
