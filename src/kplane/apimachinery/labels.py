"""Label selectors: parsing the ``labelSelector`` string and the ``LabelSelector`` object.

Every LIST and watch may carry ``?labelSelector=``; workloads carry ``spec.selector`` in
the ``metav1.LabelSelector`` object form. Both become a :class:`LabelSelector`, an AND of
:class:`Requirement` s compiled once so that matching, which runs for every object on the
list and watch hot path, is a few dict lookups and no regex.

Parsing follows ``labels.Parse`` of k8s.io/apimachinery token for token, so the same
strings are accepted, normalised (requirements sorted by key, set values sorted) and
rejected with the same messages; those come back to clients as 400 BadRequest.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kplane.apimachinery import names
from kplane.apimachinery.errors import (
    Cause,
    bad_request,
    field_forbidden,
    field_invalid,
    field_required,
)

MAX_SELECTOR_LENGTH = 16 * 1024
MAX_REQUIREMENTS = 1000


class Operator(enum.StrEnum):
    """Upstream's ``selection.Operator`` values (``gt``/``lt`` are spelled as upstream)."""

    IN = "in"
    NOT_IN = "notin"
    EQUALS = "="
    DOUBLE_EQUALS = "=="
    NOT_EQUALS = "!="
    EXISTS = "exists"
    DOES_NOT_EXIST = "!"
    GREATER_THAN = "gt"
    LESS_THAN = "lt"


_BINARY_OPERATORS = ", ".join(
    op.value for op in (
        Operator.IN, Operator.NOT_IN, Operator.EQUALS, Operator.DOUBLE_EQUALS,
        Operator.NOT_EQUALS, Operator.GREATER_THAN, Operator.LESS_THAN,
    )
)
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


def parse_int64(text: str) -> int | None:
    """``strconv.ParseInt(text, 10, 64)``: optional sign, ASCII digits, in int64 range."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits or not digits.isascii() or not digits.isdigit():
        return None
    value = int(text)
    return value if _INT64_MIN <= value <= _INT64_MAX else None


# How a requirement tests a label value, decided once when it is built.
_WANT_ONE_OF, _WANT_NONE_OF, _WANT_PRESENT, _WANT_ABSENT, _WANT_GREATER, _WANT_LESS = range(6)
_TEST_OF_OPERATOR = {
    Operator.IN: _WANT_ONE_OF,
    Operator.EQUALS: _WANT_ONE_OF,
    Operator.DOUBLE_EQUALS: _WANT_ONE_OF,
    Operator.NOT_IN: _WANT_NONE_OF,
    Operator.NOT_EQUALS: _WANT_NONE_OF,
    Operator.EXISTS: _WANT_PRESENT,
    Operator.DOES_NOT_EXIST: _WANT_ABSENT,
    Operator.GREATER_THAN: _WANT_GREATER,
    Operator.LESS_THAN: _WANT_LESS,
}

_Plan = tuple[int, str, frozenset[str], int]
_NO_LABELS: Mapping[str, str] = {}


def _passes(test: int, value: str | None, wanted: frozenset[str], bound: int) -> bool:
    if test == _WANT_ONE_OF:
        return value is not None and value in wanted
    if test == _WANT_NONE_OF:
        return value is None or value not in wanted
    if test == _WANT_PRESENT:
        return value is not None
    if test == _WANT_ABSENT:
        return value is None
    number = parse_int64(value) if value is not None else None
    if number is None:
        return False
    return number > bound if test == _WANT_GREATER else number < bound


@dataclass(frozen=True, slots=True)
class Requirement:
    """One condition on one label key; ``values`` sorted and unique for set operators.

    Build it with :func:`new_requirement` to have it validated; constructing it directly
    trusts the key and values.
    """

    key: str
    operator: Operator
    values: tuple[str, ...] = ()
    plan: _Plan = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        bound = (parse_int64(self.values[0]) if self.values else None) or 0
        plan = (_TEST_OF_OPERATOR[self.operator], self.key, frozenset(self.values), bound)
        object.__setattr__(self, "plan", plan)

    @classmethod
    def build(cls, key: str, operator: Operator, values: Iterable[str] = ()) -> Requirement:
        return cls(key, operator, tuple(values))

    def matches(self, labels: Mapping[str, str]) -> bool:
        test, key, wanted, bound = self.plan
        return _passes(test, labels.get(key), wanted, bound)

    def __str__(self) -> str:
        op = self.operator
        if op is Operator.EXISTS:
            return self.key
        if op is Operator.DOES_NOT_EXIST:
            return "!" + self.key
        joined = ",".join(sorted(self.values))
        if op is Operator.IN:
            return f"{self.key} in ({joined})"
        if op is Operator.NOT_IN:
            return f"{self.key} notin ({joined})"
        symbol = {Operator.GREATER_THAN: ">", Operator.LESS_THAN: "<"}.get(op, op.value)
        return f"{self.key}{symbol}{joined}"


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """An AND of requirements. ``matches_nothing`` is upstream's ``labels.Nothing()``."""

    requirements: tuple[Requirement, ...] = ()
    matches_nothing: bool = False
    _plans: tuple[_Plan, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_plans", tuple(req.plan for req in self.requirements))

    @property
    def empty(self) -> bool:
        """True when the selector selects everything (no requirement at all)."""
        return not self.requirements and not self.matches_nothing

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        # The hot path of LIST and watch filtering: equality tests inline, no calls.
        if self.matches_nothing:
            return False
        present: Mapping[str, str] = labels if labels is not None else _NO_LABELS
        get = present.get
        for test, key, wanted, bound in self._plans:
            value = get(key)
            if test == _WANT_ONE_OF:
                if value is None or value not in wanted:
                    return False
            elif test == _WANT_NONE_OF:
                if value is not None and value in wanted:
                    return False
            elif not _passes(test, value, wanted, bound):
                return False
        return True

    def requires_exact_match(self, key: str) -> str | None:
        """The single value ``key`` must have, if the selector pins it (for index lookups)."""
        for req in self.requirements:
            if req.key == key:
                exact = (Operator.EQUALS, Operator.DOUBLE_EQUALS, Operator.IN)
                if req.operator in exact and len(req.values) == 1:
                    return req.values[0]
                return None
        return None

    def __str__(self) -> str:
        return ",".join(str(req) for req in self.requirements)


EVERYTHING = LabelSelector()
NOTHING = LabelSelector(matches_nothing=True)


# Validation of one requirement, worded as upstream's field errors.


def _go_quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _field_error(path: str, shown_value: str, detail: str) -> str:
    return f"{path}: Invalid value: {shown_value}: {detail}"


def _go_string_slice(values: Iterable[str]) -> str:
    return "[]string{" + ", ".join(_go_quote(v) for v in values) + "}"


def _key_error(key: str, path: str) -> str | None:
    problems = names.is_qualified_name(key)
    if not problems:
        return None
    return _field_error(path, _go_quote(key), "; ".join(problems))


def _requirement_errors(key: str, operator: Operator, values: list[str]) -> list[str]:
    """Upstream ``NewRequirement`` checks, rendered as ``field.Error`` strings."""
    errors: list[str] = []
    key_problem = _key_error(key, "key")
    if key_problem:
        errors.append(key_problem)
    count = len(values)
    shown = _go_string_slice(values)
    if operator in (Operator.IN, Operator.NOT_IN) and count == 0:
        errors.append(_field_error(
            "values", shown, "for 'in', 'notin' operators, values set can't be empty"
        ))
    elif operator in (Operator.EQUALS, Operator.DOUBLE_EQUALS, Operator.NOT_EQUALS) and count != 1:
        errors.append(_field_error(
            "values", shown, "exact-match compatibility requires one single value"
        ))
    elif operator in (Operator.EXISTS, Operator.DOES_NOT_EXIST) and count:
        errors.append(_field_error(
            "values", shown, "values set must be empty for exists and does not exist"
        ))
    elif operator in (Operator.GREATER_THAN, Operator.LESS_THAN):
        if count != 1:
            errors.append(_field_error(
                "values", shown, "for 'Gt', 'Lt' operators, exactly one value is required"
            ))
        for index, value in enumerate(values):
            if parse_int64(value) is None:
                errors.append(_field_error(
                    f"values[{index}]", _go_quote(value),
                    "for 'Gt', 'Lt' operators, the value must be an integer",
                ))
    for index, value in enumerate(values):
        problems = names.is_valid_label_value(value)
        if problems:
            errors.append(
                _field_error(f"values[{index}][{key}]", _go_quote(value), "; ".join(problems))
            )
    return errors


def _aggregate(errors: list[str]) -> str:
    unique = list(dict.fromkeys(errors))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


def new_requirement(key: str, operator: Operator, values: Iterable[str] = ()) -> Requirement:
    """A validated requirement; raises 400 with upstream's message when invalid."""
    kept = list(values)
    errors = _requirement_errors(key, operator, kept)
    if errors:
        raise bad_request(_aggregate(errors))
    return Requirement.build(key, operator, kept)


# The string syntax: lexer.


class _Tok(enum.IntEnum):
    END = 1
    CLOSE_PAREN = 2
    COMMA = 3
    NOT = 4
    DOUBLE_EQUALS = 5
    EQUALS = 6
    GREATER = 7
    IDENTIFIER = 8
    IN = 9
    LESS = 10
    NOT_EQUALS = 11
    NOT_IN = 12
    OPEN_PAREN = 13


_SYMBOLS = {
    ")": _Tok.CLOSE_PAREN, ",": _Tok.COMMA, "!": _Tok.NOT, "==": _Tok.DOUBLE_EQUALS,
    "=": _Tok.EQUALS, ">": _Tok.GREATER, "<": _Tok.LESS, "!=": _Tok.NOT_EQUALS,
    "(": _Tok.OPEN_PAREN,
}
_KEYWORDS = {"in": _Tok.IN, "notin": _Tok.NOT_IN}
_SPECIAL = frozenset("=!(),><")
_WHITESPACE = frozenset(" \t\r\n")

_Token = tuple[_Tok, str]


def _tokenize(text: str) -> list[_Token]:
    """Split as upstream's lexer does: identifiers run until whitespace or a symbol."""
    tokens: list[_Token] = []
    pos, size = 0, len(text)
    while True:
        while pos < size and text[pos] in _WHITESPACE:
            pos += 1
        if pos >= size:
            tokens.append((_Tok.END, ""))
            return tokens
        char = text[pos]
        if char in _SPECIAL:
            # The only two-character symbols are "==" and "!="; upstream takes them greedily.
            pair = text[pos:pos + 2]
            literal = pair if pair in ("==", "!=") else char
            tokens.append((_SYMBOLS[literal], literal))
            pos += len(literal)
            continue
        start = pos
        while pos < size and text[pos] not in _SPECIAL and text[pos] not in _WHITESPACE:
            pos += 1
        word = text[start:pos]
        tokens.append((_KEYWORDS.get(word, _Tok.IDENTIFIER), word))


# The string syntax: parser.


class _ParseError(Exception):
    pass


_OPERATOR_OF_TOKEN = {
    _Tok.IN: Operator.IN, _Tok.NOT_IN: Operator.NOT_IN, _Tok.EQUALS: Operator.EQUALS,
    _Tok.DOUBLE_EQUALS: Operator.DOUBLE_EQUALS, _Tok.NOT_EQUALS: Operator.NOT_EQUALS,
    _Tok.GREATER: Operator.GREATER_THAN, _Tok.LESS: Operator.LESS_THAN,
}


class _Parser:
    """Recursive descent over the token list; ``in``/``notin`` are plain words as values."""

    def __init__(self, tokens: list[_Token]) -> None:
        self._tokens = tokens
        self._pos = 0

    def _peek(self, *, as_value: bool = True) -> _Token:
        tok, lit = self._tokens[self._pos]
        if as_value and tok in (_Tok.IN, _Tok.NOT_IN):
            return _Tok.IDENTIFIER, lit
        return tok, lit

    def _take(self, *, as_value: bool = True) -> _Token:
        token = self._peek(as_value=as_value)
        self._pos += 1
        return token

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            tok, lit = self._peek()
            if tok is _Tok.END:
                return requirements
            if tok not in (_Tok.IDENTIFIER, _Tok.NOT):
                raise _ParseError(f"found '{lit}', expected: !, identifier, or 'end of string'")
            try:
                requirements.append(self._requirement())
            except _ParseError as err:
                raise _ParseError(f"unable to parse requirement: {err}") from None
            if len(requirements) > MAX_REQUIREMENTS:
                raise _ParseError(
                    f"label selector has more than {MAX_REQUIREMENTS} requirements"
                )
            tok, lit = self._take()
            if tok is _Tok.END:
                return requirements
            if tok is not _Tok.COMMA:
                raise _ParseError(f"found '{lit}', expected: ',' or 'end of string'")
            next_tok, next_lit = self._peek()
            if next_tok not in (_Tok.IDENTIFIER, _Tok.NOT):
                raise _ParseError(f"found '{next_lit}', expected: identifier after ','")

    def _requirement(self) -> Requirement:
        key, unary = self._key_and_unary_operator()
        if unary is not None:
            return self._checked(key, unary, [])
        operator = self._binary_operator()
        if operator in (Operator.IN, Operator.NOT_IN):
            values = self._value_set()
        else:
            values = [self._exact_value()]
        return self._checked(key, operator, values)

    @staticmethod
    def _checked(key: str, operator: Operator, values: list[str]) -> Requirement:
        errors = _requirement_errors(key, operator, values)
        if errors:
            raise _ParseError(_aggregate(errors))
        return Requirement.build(key, operator, values)

    def _key_and_unary_operator(self) -> tuple[str, Operator | None]:
        negated = False
        tok, lit = self._take()
        if tok is _Tok.NOT:
            negated = True
            tok, lit = self._take()
        if tok is not _Tok.IDENTIFIER:
            raise _ParseError(f"found '{lit}', expected: identifier")
        # Upstream validates the key here with a nil field path, printed as "<nil>".
        problem = _key_error(lit, "<nil>")
        if problem:
            raise _ParseError(problem)
        following, _ = self._peek()
        if negated:
            return lit, Operator.DOES_NOT_EXIST
        if following in (_Tok.END, _Tok.COMMA):
            return lit, Operator.EXISTS
        return lit, None

    def _binary_operator(self) -> Operator:
        tok, lit = self._take(as_value=False)
        operator = _OPERATOR_OF_TOKEN.get(tok)
        if operator is None:
            raise _ParseError(f"found '{lit}', expected: {_BINARY_OPERATORS}")
        return operator

    def _value_set(self) -> list[str]:
        tok, lit = self._take()
        if tok is not _Tok.OPEN_PAREN:
            raise _ParseError(f"found '{lit}' expected: '('")
        tok, lit = self._peek()
        if tok is _Tok.CLOSE_PAREN:
            self._take()
            return [""]
        if tok not in (_Tok.IDENTIFIER, _Tok.COMMA):
            raise _ParseError(f"found '{lit}', expected: ',', ')' or identifier")
        values = self._identifier_list()
        if self._take()[0] is not _Tok.CLOSE_PAREN:
            raise _ParseError(f"found '{lit}', expected: ')'")
        return sorted(values)

    def _identifier_list(self) -> set[str]:
        """Comma-separated words; empty entries (``(,a)``, ``(a,,b)``) count as ``""``."""
        values: set[str] = set()
        while True:
            tok, lit = self._take()
            if tok is _Tok.IDENTIFIER:
                values.add(lit)
                following, following_lit = self._peek()
                if following is _Tok.COMMA:
                    continue
                if following is _Tok.CLOSE_PAREN:
                    return values
                raise _ParseError(f"found '{following_lit}', expected: ',' or ')'")
            if tok is _Tok.COMMA:
                if not values:
                    values.add("")
                following, _ = self._peek()
                if following is _Tok.CLOSE_PAREN:
                    values.add("")
                    return values
                if following is _Tok.COMMA:
                    self._take()
                    values.add("")
                continue
            raise _ParseError(f"found '{lit}', expected: ',', or identifier")

    def _exact_value(self) -> str:
        tok, _ = self._peek()
        if tok in (_Tok.END, _Tok.COMMA):
            return ""
        tok, lit = self._take()
        if tok is _Tok.IDENTIFIER:
            return lit
        raise _ParseError(f"found '{lit}', expected: identifier")


def parse_label_selector(text: str) -> LabelSelector:
    """Parse ``?labelSelector=``; raises 400 BadRequest with upstream's message."""
    if len(text) > MAX_SELECTOR_LENGTH:
        raise bad_request(f"label selector is longer than {MAX_SELECTOR_LENGTH} characters")
    try:
        requirements = _Parser(_tokenize(text)).parse()
    except _ParseError as err:
        raise bad_request(str(err)) from None
    requirements.sort(key=lambda req: req.key)
    return LabelSelector(tuple(requirements))


def selector_from_set(labels: Mapping[str, str]) -> LabelSelector:
    """A selector matching exactly these labels (``labels.SelectorFromSet``), unvalidated."""
    requirements = [Requirement.build(k, Operator.EQUALS, [v]) for k, v in labels.items()]
    requirements.sort(key=lambda req: req.key)
    return LabelSelector(tuple(requirements))


# The object form (metav1.LabelSelector).

_EXPRESSION_OPERATORS = {
    "In": Operator.IN,
    "NotIn": Operator.NOT_IN,
    "Exists": Operator.EXISTS,
    "DoesNotExist": Operator.DOES_NOT_EXIST,
}


def _join(path: str, child: str) -> str:
    return f"{path}.{child}" if path else child


def validate_label_map(labels: Any, path: str) -> list[Cause]:
    """Label keys must be qualified names and values valid label values (``ValidateLabels``)."""
    if labels is None:
        return []
    if not isinstance(labels, Mapping):
        return [field_invalid(path, labels, "must be a map of strings")]
    causes: list[Cause] = []
    for key, value in labels.items():
        causes.extend(field_invalid(path, key, msg) for msg in names.is_qualified_name(str(key)))
        if not isinstance(value, str):
            causes.append(field_invalid(path, value, "must be a string"))
            continue
        causes.extend(field_invalid(path, value, msg) for msg in names.is_valid_label_value(value))
    return causes


def _validate_expression(expr: Any, path: str) -> list[Cause]:
    if not isinstance(expr, Mapping):
        return [field_invalid(path, expr, "must be an object")]
    causes: list[Cause] = []
    operator = expr.get("operator")
    values = expr.get("values") or []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        return [field_invalid(_join(path, "values"), values, "must be a list of strings")]
    if operator in ("In", "NotIn"):
        if not values:
            causes.append(field_required(
                _join(path, "values"),
                "Required value: must be specified when `operator` is 'In' or 'NotIn'",
            ))
    elif operator in ("Exists", "DoesNotExist"):
        if values:
            causes.append(field_forbidden(
                _join(path, "values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            ))
    else:
        causes.append(
            field_invalid(_join(path, "operator"), operator, "not a valid selector operator")
        )
    key = expr.get("key")
    key_text = key if isinstance(key, str) else ""
    causes.extend(
        field_invalid(_join(path, "key"), key_text, msg)
        for msg in names.is_qualified_name(key_text)
    )
    for index, value in enumerate(values):
        causes.extend(
            field_invalid(f"{_join(path, 'values')}[{index}]", value, msg)
            for msg in names.is_valid_label_value(value)
        )
    return causes


def validate_label_selector(selector: Any, path: str) -> list[Cause]:
    """Field errors of a ``metav1.LabelSelector`` at ``path`` (``ValidateLabelSelector``)."""
    if selector is None:
        return []
    if not isinstance(selector, Mapping):
        return [field_invalid(path, selector, "must be an object")]
    causes = validate_label_map(selector.get("matchLabels"), _join(path, "matchLabels"))
    expressions = selector.get("matchExpressions") or []
    expressions_path = _join(path, "matchExpressions")
    if not isinstance(expressions, list):
        return [*causes, field_invalid(expressions_path, expressions, "must be a list")]
    for index, expr in enumerate(expressions):
        causes.extend(_validate_expression(expr, f"{expressions_path}[{index}]"))
    return causes


def label_selector_from_dict(
    selector: Mapping[str, Any] | None, *, path: str = "selector"
) -> LabelSelector:
    """Compile a ``metav1.LabelSelector``, as ``metav1.LabelSelectorAsSelector`` does.

    ``None`` selects nothing and ``{}`` everything (upstream's distinction). An invalid
    selector raises 400 BadRequest carrying the field causes; strategies that validate a
    stored object should call :func:`validate_label_selector` and report 422 instead.
    """
    if selector is None:
        return NOTHING
    causes = validate_label_selector(selector, path)
    if causes:
        message = "; ".join(f"{c.field}: {c.message}" for c in causes)
        raise bad_request(f"invalid label selector: {message}", causes=causes)
    requirements = [
        Requirement.build(key, Operator.EQUALS, [value])
        for key, value in (selector.get("matchLabels") or {}).items()
    ]
    for expr in selector.get("matchExpressions") or []:
        operator = _EXPRESSION_OPERATORS[expr["operator"]]
        values = sorted(set(expr.get("values") or []))
        requirements.append(Requirement.build(expr["key"], operator, values))
    requirements.sort(key=lambda req: req.key)
    return LabelSelector(tuple(requirements))


__all__ = [
    "EVERYTHING",
    "MAX_REQUIREMENTS",
    "MAX_SELECTOR_LENGTH",
    "NOTHING",
    "LabelSelector",
    "Operator",
    "Requirement",
    "label_selector_from_dict",
    "new_requirement",
    "parse_int64",
    "parse_label_selector",
    "selector_from_set",
    "validate_label_map",
    "validate_label_selector",
]
