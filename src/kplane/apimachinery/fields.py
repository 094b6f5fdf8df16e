"""Field selectors: the ``?fieldSelector=`` of LIST and watch.

A field selector is an AND of ``field=value`` / ``field==value`` / ``field!=value`` terms
over a few selectable fields of an object (``metadata.name``, ``metadata.namespace`` and
whatever a kind declares). Parsing follows ``fields.ParseSelector`` of k8s.io/apimachinery
exactly: terms split on unescaped commas, no whitespace trimming, values unescaped
(``\\\\``, ``\\,``, ``\\=``), messages as upstream's; every failure is a 400 BadRequest.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from kplane.apimachinery.errors import bad_request

MAX_SELECTOR_LENGTH = 16 * 1024
MAX_TERMS = 1000


class FieldOperator(enum.StrEnum):
    EQUALS = "="
    DOUBLE_EQUALS = "=="
    NOT_EQUALS = "!="


# "!=" and "==" are tried before "=" so that no "=" is left at the front of a value.
_TERM_OPERATORS = (FieldOperator.NOT_EQUALS, FieldOperator.DOUBLE_EQUALS, FieldOperator.EQUALS)

FieldRequirement = tuple[str, FieldOperator, str]
"""(field, operator, unescaped value)."""


def escape_value(value: str) -> str:
    """Escape ``\\``, ``,`` and ``=`` so that a literal value survives parsing."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def unescape_value(raw: str) -> str:
    """Undo :func:`escape_value`; unknown escapes and bare ``,``/``=`` are 400s."""
    if "\\" not in raw and "," not in raw and "=" not in raw:
        return raw
    out: list[str] = []
    escaping = False
    for char in raw:
        if escaping:
            if char not in "\\,=":
                raise bad_request(
                    f"invalid field selector: invalid escape sequence: \\{char}"
                )
            out.append(char)
            escaping = False
        elif char == "\\":
            escaping = True
        elif char in ",=":
            # Upstream formats the rune with %v, which prints its code point.
            raise bad_request(
                f"invalid field selector: unescaped character in value: {ord(char)}"
            )
        else:
            out.append(char)
    if escaping:
        raise bad_request("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not escaped; escapes stay in the terms."""
    terms: list[str] = []
    start = 0
    escaping = False
    for index, char in enumerate(text):
        if escaping:
            escaping = False
        elif char == "\\":
            escaping = True
        elif char == ",":
            terms.append(text[start:index])
            start = index + 1
    terms.append(text[start:])
    return terms


def _split_term(term: str) -> tuple[str, FieldOperator, str] | None:
    """Cut at the first operator; the field part knows no escaping."""
    for index in range(len(term)):
        for operator in _TERM_OPERATORS:
            if term.startswith(operator.value, index):
                return term[:index], operator, term[index + len(operator.value):]
    return None


@dataclass(frozen=True, slots=True)
class FieldSelector:
    """An AND of field terms; empty when it has none (selects everything)."""

    terms: tuple[FieldRequirement, ...] = ()

    @property
    def requirements(self) -> list[FieldRequirement]:
        """The terms sorted as upstream sorts them; ``==`` is reported as ``=``."""
        return list(self.terms)

    @property
    def empty(self) -> bool:
        return not self.terms

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(name for name, _, _ in self.terms)

    def matches(self, fields: Mapping[str, str]) -> bool:
        """True when every term holds; a field that is absent counts as ``""``."""
        for name, operator, value in self.terms:
            equal = fields.get(name, "") == value
            if equal == (operator is FieldOperator.NOT_EQUALS):
                return False
        return True

    def requires_exact_match(self, name: str) -> str | None:
        """The value ``name`` must equal, if a term pins it (lets a store use an index)."""
        for field_name, operator, value in self.terms:
            if field_name == name and operator is not FieldOperator.NOT_EQUALS:
                return value
        return None

    def __str__(self) -> str:
        rendered = []
        for name, operator, value in self.terms:
            symbol = "!=" if operator is FieldOperator.NOT_EQUALS else "="
            rendered.append(f"{name}{symbol}{escape_value(value)}")
        return ",".join(rendered)


EVERYTHING = FieldSelector()


def parse_field_selector(text: str) -> FieldSelector:
    """Parse ``?fieldSelector=``; raises 400 BadRequest with upstream's messages."""
    if len(text) > MAX_SELECTOR_LENGTH:
        raise bad_request(f"field selector is longer than {MAX_SELECTOR_LENGTH} characters")
    if not text:
        return EVERYTHING
    terms = sorted(_split_terms(text))
    if len(terms) > MAX_TERMS:
        raise bad_request(f"field selector has more than {MAX_TERMS} terms")
    requirements: list[FieldRequirement] = []
    for term in terms:
        if not term:
            continue
        parts = _split_term(term)
        if parts is None:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        name, operator, raw_value = parts
        if operator is FieldOperator.DOUBLE_EQUALS:
            operator = FieldOperator.EQUALS
        requirements.append((name, operator, unescape_value(raw_value)))
    return FieldSelector(tuple(requirements))


def check_supported(selector: FieldSelector, supported: Collection[str]) -> None:
    """Reject fields the kind cannot select on: 400 ``field label not supported: <field>``."""
    for name, _, _ in selector.terms:
        if name not in supported:
            raise bad_request(f"field label not supported: {name}")
