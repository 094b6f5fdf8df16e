from __future__ import annotations

import pytest

from kplane.apimachinery.errors import StatusError
from kplane.apimachinery.fields import (
    EVERYTHING,
    FieldOperator,
    check_supported,
    escape_value,
    parse_field_selector,
    unescape_value,
)


def parse_error(text: str) -> str:
    with pytest.raises(StatusError) as caught:
        parse_field_selector(text)
    assert caught.value.code == 400
    return caught.value.message


def test_operators_and_sorting() -> None:
    selector = parse_field_selector("status.phase!=Running,metadata.name==web,metadata.namespace=a")
    assert selector.requirements == [
        ("metadata.name", FieldOperator.EQUALS, "web"),
        ("metadata.namespace", FieldOperator.EQUALS, "a"),
        ("status.phase", FieldOperator.NOT_EQUALS, "Running"),
    ]
    assert str(selector) == "metadata.name=web,metadata.namespace=a,status.phase!=Running"
    assert selector.fields == {"metadata.name", "metadata.namespace", "status.phase"}


def test_empty_selectors() -> None:
    assert parse_field_selector("").empty
    assert parse_field_selector(",,").empty
    assert parse_field_selector("") == EVERYTHING
    assert not parse_field_selector("a=b").empty


def test_whitespace_is_not_trimmed_as_upstream() -> None:
    assert parse_field_selector("a = b").requirements == [("a ", FieldOperator.EQUALS, " b")]


def test_first_operator_wins_and_value_may_be_empty() -> None:
    assert parse_field_selector("a==").requirements == [("a", FieldOperator.EQUALS, "")]
    assert parse_field_selector("a!=").requirements == [("a", FieldOperator.NOT_EQUALS, "")]


def test_escapes() -> None:
    selector = parse_field_selector(r"metadata.name=a\,b\=c\\d,x=y")
    assert selector.requirements == [
        ("metadata.name", FieldOperator.EQUALS, "a,b=c\\d"),
        ("x", FieldOperator.EQUALS, "y"),
    ]
    assert str(selector) == r"metadata.name=a\,b\=c\\d,x=y"
    assert unescape_value(escape_value("a,=\\!")) == "a,=\\!"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", "invalid selector: 'abc'; can't understand 'abc'"),
        ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
        (r"a=b\!", r"invalid field selector: invalid escape sequence: \!"),
        ("a=b\\", "invalid field selector: invalid escape sequence: \\"),
        ("a=b=c", "invalid field selector: unescaped character in value: 61"),
    ],
)
def test_errors_are_worded_as_upstream(text: str, message: str) -> None:
    assert parse_error(text) == message


def test_hostile_selectors_are_refused() -> None:
    assert "longer than" in parse_error("a=" + "b" * 16 * 1024)
    assert "more than 1000 terms" in parse_error(",".join(["a=b"] * 1001))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metadata.name=web", True),
        ("metadata.name=db", False),
        ("metadata.name!=db", True),
        ("metadata.name!=web", False),
        ("spec.nodeName=", True),
        ("spec.nodeName!=", False),
        ("metadata.name=web,metadata.namespace=prod", True),
        ("metadata.name=web,metadata.namespace=dev", False),
        ("", True),
    ],
)
def test_matches_counts_missing_fields_as_empty(text: str, expected: bool) -> None:
    fields = {"metadata.name": "web", "metadata.namespace": "prod"}
    assert parse_field_selector(text).matches(fields) is expected


def test_requires_exact_match() -> None:
    selector = parse_field_selector("metadata.name=web,metadata.namespace!=a")
    assert selector.requires_exact_match("metadata.name") == "web"
    assert selector.requires_exact_match("metadata.namespace") is None
    assert selector.requires_exact_match("other") is None


def test_check_supported() -> None:
    supported = {"metadata.name", "metadata.namespace"}
    check_supported(parse_field_selector("metadata.name=a"), supported)
    check_supported(EVERYTHING, supported)
    with pytest.raises(StatusError) as caught:
        check_supported(parse_field_selector("metadata.name=a,spec.foo=b"), supported)
    assert caught.value.code == 400
    assert caught.value.reason == "BadRequest"
    assert caught.value.message == "field label not supported: spec.foo"
