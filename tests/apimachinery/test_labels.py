from __future__ import annotations

import pytest

from kplane.apimachinery.errors import StatusError
from kplane.apimachinery.labels import (
    EVERYTHING,
    NOTHING,
    LabelSelector,
    Operator,
    Requirement,
    label_selector_from_dict,
    new_requirement,
    parse_int64,
    parse_label_selector,
    selector_from_set,
    validate_label_selector,
)


def parse_error(text: str) -> str:
    with pytest.raises(StatusError) as caught:
        parse_label_selector(text)
    assert caught.value.code == 400
    assert caught.value.reason == "BadRequest"
    return caught.value.message


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("", ""),
        ("a=b", "a=b"),
        ("a==b", "a==b"),
        ("a!=b", "a!=b"),
        ("  a = b ,  c  ", "a=b,c"),
        ("x in (foo,,baz),y,z notin ()", "x in (,baz,foo),y,z notin ()"),
        ("b,a", "a,b"),
        ("!a", "!a"),
        ("a in (c, b, c)", "a in (b,c)"),
        ("a>5,a<10", "a>5,a<10"),
        ("a=", "a="),
        ("a=in", "a=in"),
        ("in in (in,notin)", "in in (in,notin)"),
        ("example.com/app=Web_1", "example.com/app=Web_1"),
        ("a\tin\n(b)", "a in (b)"),
    ],
)
def test_parse_accepts_and_canonicalises(text: str, canonical: str) -> None:
    assert str(parse_label_selector(text)) == canonical


def test_parsed_requirements() -> None:
    selector = parse_label_selector("tier notin (a,b),app=web,!gone,exists")
    assert [(r.key, r.operator, r.values) for r in selector.requirements] == [
        ("app", Operator.EQUALS, ("web",)),
        ("exists", Operator.EXISTS, ()),
        ("gone", Operator.DOES_NOT_EXIST, ()),
        ("tier", Operator.NOT_IN, ("a", "b")),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
        ("a in b", "unable to parse requirement: found 'b' expected: '('"),
        ("a in (b", "unable to parse requirement: found '', expected: ',' or ')'"),
        ("a in (b c)", "unable to parse requirement: found 'c', expected: ',' or ')'"),
        ("a in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier"),
        ("a in (b,=)", "unable to parse requirement: found '=', expected: ',', or identifier"),
        ("a=(", "unable to parse requirement: found '(', expected: identifier"),
        ("a,", "found '', expected: identifier after ','"),
        ("a,,b", "found ',', expected: identifier after ','"),
        ("(", "found '(', expected: !, identifier, or 'end of string'"),
        ("a=b c", "found 'c', expected: ',' or 'end of string'"),
        ("!a=b", "found '=', expected: ',' or 'end of string'"),
        ("!", "unable to parse requirement: found '', expected: identifier"),
        (
            "a>x",
            "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' "
            "operators, the value must be an integer",
        ),
        (
            "app:x=y",
            'unable to parse requirement: <nil>: Invalid value: "app:x": name part must consist '
            "of alphanumeric characters, '-', '_' or '.', and must start and end with an "
            "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used "
            "for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
        ),
        (
            "a=b@",
            'unable to parse requirement: values[0][a]: Invalid value: "b@": a valid label must '
            "be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
            "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
            "'12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
        ),
    ],
)
def test_parse_errors_are_worded_as_upstream(text: str, message: str) -> None:
    assert parse_error(text) == message


def test_hostile_selectors_are_refused_up_front() -> None:
    assert "longer than" in parse_error("a" * (16 * 1024 + 1))
    assert "more than 1000 requirements" in parse_error(",".join(["a"] * 1001))
    assert len(parse_label_selector(",".join(f"k{i}" for i in range(1000))).requirements) == 1000


LABELS = {"app": "web", "tier": "front", "n": "7", "empty": ""}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", True),
        ("app=web", True),
        ("app==web", True),
        ("app=db", False),
        ("app!=db", True),
        ("app!=web", False),
        ("missing!=x", True),
        ("app in (db,web)", True),
        ("missing in (a)", False),
        ("app notin (web)", False),
        ("missing notin (web)", True),
        ("app", True),
        ("missing", False),
        ("!missing", True),
        ("!app", False),
        ("n>5", True),
        ("n>7", False),
        ("n<8", True),
        ("n<1", False),
        ("app>1", False),
        ("missing<100", False),
        ("empty=", True),
        ("empty in ()", True),
        ("app=web,tier=front,n>6", True),
        ("app=web,tier=back", False),
    ],
)
def test_matches(text: str, expected: bool) -> None:
    selector = parse_label_selector(text)
    assert selector.matches(LABELS) is expected


def test_every_requirement_matches_like_the_selector() -> None:
    for text in ("app=web", "n>3", "!missing", "tier notin (back)"):
        (requirement,) = parse_label_selector(text).requirements
        assert requirement.matches(LABELS) is parse_label_selector(text).matches(LABELS)


def test_matches_none_labels_and_empty_selectors() -> None:
    assert parse_label_selector("!a").matches(None)
    assert not parse_label_selector("a").matches(None)
    assert EVERYTHING.empty
    assert EVERYTHING.matches({})
    assert not NOTHING.empty
    assert not NOTHING.matches({"a": "b"})
    assert not parse_label_selector("a").empty


def test_integer_parsing_is_go_like() -> None:
    assert parse_int64("+5") == 5
    assert parse_int64("-5") == -5
    assert parse_int64(" 5") is None
    assert parse_int64("5_0") is None
    assert parse_int64("²") is None
    assert parse_int64("") is None
    assert parse_int64("9223372036854775807") == 2**63 - 1
    assert parse_int64("9223372036854775808") is None


def test_requires_exact_match() -> None:
    selector = parse_label_selector("app=web,tier in (a,b),x in (y)")
    assert selector.requires_exact_match("app") == "web"
    assert selector.requires_exact_match("tier") is None
    assert selector.requires_exact_match("x") == "y"
    assert selector.requires_exact_match("nope") is None


def test_selector_from_set() -> None:
    selector = selector_from_set({"b": "2", "a": "1"})
    assert str(selector) == "a=1,b=2"
    assert selector.matches({"a": "1", "b": "2", "c": "3"})
    assert not selector.matches({"a": "1"})
    assert selector_from_set({}).empty


def test_new_requirement_validates() -> None:
    assert str(new_requirement("a", Operator.IN, ["y", "x"])) == "a in (x,y)"
    with pytest.raises(StatusError) as caught:
        new_requirement("a", Operator.IN, [])
    assert caught.value.message == (
        "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty"
    )
    with pytest.raises(StatusError) as caught:
        new_requirement("a", Operator.EQUALS, ["x", "y"])
    assert "exact-match compatibility requires one single value" in caught.value.message


def test_from_dict_match_labels_and_expressions() -> None:
    selector = label_selector_from_dict({
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["front", "edge"]},
            {"key": "legacy", "operator": "DoesNotExist"},
            {"key": "env", "operator": "NotIn", "values": ["prod"]},
            {"key": "team", "operator": "Exists"},
        ],
    })
    assert str(selector) == "app=web,env notin (prod),!legacy,team,tier in (edge,front)"
    assert selector.matches({"app": "web", "tier": "edge", "team": "x"})
    assert not selector.matches({"app": "web", "tier": "edge", "team": "x", "legacy": "1"})
    assert not selector.matches({"app": "web", "tier": "edge", "team": "x", "env": "prod"})


def test_from_dict_empty_and_none() -> None:
    assert label_selector_from_dict({}) == EVERYTHING
    assert label_selector_from_dict({"matchLabels": {}, "matchExpressions": []}).empty
    none = label_selector_from_dict(None)
    assert none == NOTHING
    assert isinstance(none, LabelSelector)
    assert not none.matches({})


def test_from_dict_rejects_invalid_with_causes() -> None:
    with pytest.raises(StatusError) as caught:
        label_selector_from_dict(
            {"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]},
            path="spec.selector",
        )
    assert caught.value.code == 400
    assert [c.to_dict() for c in caught.value.causes] == [{
        "reason": "FieldValueInvalid",
        "message": 'Invalid value: "Gt": not a valid selector operator',
        "field": "spec.selector.matchExpressions[0].operator",
    }]


def test_validate_label_selector_causes() -> None:
    causes = validate_label_selector(
        {
            "matchLabels": {"bad key!": "v", "ok": "-bad"},
            "matchExpressions": [
                {"key": "a", "operator": "In", "values": []},
                {"key": "b", "operator": "Exists", "values": ["x"]},
                {"key": "", "operator": "NotIn", "values": ["ok", "no way"]},
            ],
        },
        "spec.selector",
    )
    fields_and_reasons = [(c.field, c.reason) for c in causes]
    assert fields_and_reasons == [
        ("spec.selector.matchLabels", "FieldValueInvalid"),
        ("spec.selector.matchLabels", "FieldValueInvalid"),
        ("spec.selector.matchExpressions[0].values", "FieldValueRequired"),
        ("spec.selector.matchExpressions[1].values", "FieldValueForbidden"),
        ("spec.selector.matchExpressions[2].key", "FieldValueInvalid"),
        ("spec.selector.matchExpressions[2].key", "FieldValueInvalid"),
        ("spec.selector.matchExpressions[2].values[1]", "FieldValueInvalid"),
    ]
    assert causes[2].message == (
        "Required value: must be specified when `operator` is 'In' or 'NotIn'"
    )
    assert causes[3].message == (
        "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
    )
    assert validate_label_selector(None, "spec.selector") == []
    assert validate_label_selector({"matchLabels": {"a": "b"}}, "s") == []


def test_directly_built_requirements_match() -> None:
    assert Requirement("a", Operator.EQUALS, ("b",)).matches({"a": "b"})
    assert not Requirement("a", Operator.EQUALS, ("b",)).matches({"a": "c"})
    assert Requirement("n", Operator.GREATER_THAN, ("3",)).matches({"n": "4"})
    assert LabelSelector((Requirement("a", Operator.DOES_NOT_EXIST),)).matches({"b": "1"})
