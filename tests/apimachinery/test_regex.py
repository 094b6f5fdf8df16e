"""Tenant-written patterns: Go's RE2 dialect, matched in linear time."""

from __future__ import annotations

import pytest

from kplane.apimachinery.regex import InvalidPatternError, cached_pattern, compile_pattern


@pytest.mark.parametrize(("pattern", "text", "found"), [
    (r"^\p{L}+$", "héllo", True),          # Unicode classes, as Go reads them
    (r"^\p{L}+$", "h3llo", False),
    (r"abc\z", "xabc", True),              # \z: end of text
    (r"a(?i)b", "aB", True),               # inline flags
    (r"^\d+$", "١٢٣", False),              # \d is ASCII-only in Go (Python's re says True)
    (r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "my-name", True),
])
def test_go_syntax(pattern: str, text: str, found: bool) -> None:
    assert (compile_pattern(pattern).search(text) is not None) is found


def test_an_invalid_pattern_says_why() -> None:
    with pytest.raises(InvalidPatternError, match=r"error parsing regexp: missing \]"):
        compile_pattern("([")


def test_backtracking_patterns_finish() -> None:
    # A backtracking engine needs about 2**60 steps for this; RE2 reads the text once.
    assert compile_pattern("^(a+)+$").search("a" * 60 + "!") is None
    assert compile_pattern("^(a|aa)+$").search("a" * 10_000) is not None


def test_cached_patterns_are_shared() -> None:
    assert cached_pattern("[0-9]+") is cached_pattern("[0-9]+")
    with pytest.raises(InvalidPatternError):
        cached_pattern("(")
