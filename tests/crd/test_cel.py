"""Tests for kplane.crd.cel and its function library."""

from __future__ import annotations

from typing import Any

import pytest

from kplane.crd.cel import (
    CelProgram,
    compile_rule,
    converter_for,
    escape_property_name,
    references_old_self,
)


def _run(rule: str, value: Any = None) -> Any:
    program = compile_rule({"rule": rule}, path="x")
    assert isinstance(program, CelProgram), program
    outcome = program.evaluate(value)
    return outcome.passed if not outcome.evaluation_error else outcome.message


@pytest.mark.parametrize("rule", [
    "'Hello'.lowerAscii() == 'hello' && 'a'.upperAscii() == 'A'",
    "'a/b/c'.split('/') == ['a', 'b', 'c'] && ['a', 'b'].join('-') == 'a-b'",
    "'abc'.indexOf('c') == 2 && 'abcabc'.lastIndexOf('a') == 3",
    "'abcdef'.substring(1, 3) == 'bc' && ' x '.trim() == 'x'",
    "'aXbX'.replace('X', '-') == 'a-b-'",
    "[1, 2, 3].isSorted() && ![3, 1].isSorted()",
    "[1, 2, 3].sum() == 6 && [1, 5].max() == 5 && [4, 2].min() == 2",
    "[1, 2, 3].indexOf(2) == 1 && ['a', 'b', 'a'].lastIndexOf('a') == 2",
    "'abc123'.find('[0-9]+') == '123' && 'a1b2'.findAll('[0-9]') == ['1', '2']",
    "isURL('https://example.com:8080/p?q=1') && !isURL('not a url')",
    "url('https://example.com:8080/p').getHost() == 'example.com:8080'",
    "url('https://example.com:8080/p').getPort() == '8080'",
    "isIP('10.0.0.1') && !isIP('10.0.0') && ip('::1').family() == 6",
    "isCIDR('10.0.0.0/8') && cidr('10.0.0.0/8').containsIP('10.1.2.3')",
    "quantity('1Gi').isGreaterThan(quantity('1000Mi')) && quantity('500m').sign() == 1",
    "isQuantity('1.5') && !isQuantity('1..5') && quantity('2k').asInteger() == 2000",
    "duration('1m') > duration('30s')",
    "[1, 2].all(x, x > 0) && [1, 2].exists_one(x, x == 2) && [1, 2].map(x, x * 2) == [2, 4]",
    "[1, 2, 3].filter(x, x > 1).size() == 2",
    "{'a': 1}.?b.orValue(5) == 5",
])
def test_library_functions(rule: str) -> None:
    assert _run(rule) is True


def test_self_is_bound() -> None:
    assert _run("self.a.startsWith('x') && has(self.a) && !has(self.b)", {"a": "xy"}) is True


def test_compile_error_is_a_cause_naming_the_rule() -> None:
    causes = compile_rule({"rule": "self.foo("}, path="p.x-kubernetes-validations[0]")
    assert isinstance(causes, list)
    assert causes[0].field == "p.x-kubernetes-validations[0].rule"
    assert causes[0].message.startswith('Invalid value: "self.foo(": compilation failed: ')


def test_bad_reason_and_message_expression() -> None:
    causes = compile_rule({"rule": "true", "reason": "Nope", "messageExpression": "1 +"},
                          path="p")
    assert isinstance(causes, list)
    assert [c.field for c in causes] == ["p.reason", "p.messageExpression"]


def test_runtime_error_does_not_raise() -> None:
    assert "division by zero" in str(_run("1 / self == 1", 0)).lower() or \
        "divide by zero" in str(_run("1 / self == 1", 0)).lower()


def test_a_rule_over_its_budget_is_a_validation_error() -> None:
    rule = 'self.all(x, self.all(y, self.all(z, x + y + z != "")))'
    assert _run(rule, ["x"] * 50) == ("validation failed due to running out of cost budget, "
                                      "no further validation rules will be run")


def test_regex_functions_use_re2() -> None:
    assert _run("self.find('^(a+)+$') == ''", "a" * 60 + "!") is True
    assert _run(r"self.find('\\p{L}+') == 'héllo'", "héllo1") is True
    assert _run("self.findAll('a', 2) == ['a', 'a']", "aaaa") is True
    message = _run("self.find('([') == ''", "x")
    assert isinstance(message, str) and "error parsing regexp: missing ]" in message


def test_transition_detection_ignores_strings() -> None:
    assert references_old_self("self == oldSelf")
    assert not references_old_self("self == 'oldSelf'")


def test_property_name_escaping() -> None:
    assert escape_property_name("namespace") == "__namespace__"
    assert escape_property_name("a-b.c/d") == "a__dash__b__dot__c__slash__d"
    assert escape_property_name("x__y") == "x__underscores__y"
    assert escape_property_name("plain") == "plain"
    assert escape_property_name("a b") is None
    schema = {"type": "object", "properties": {"namespace": {"type": "string"},
                                               "ok": {"type": "string"}}}
    convert = converter_for(schema)
    assert convert is not None
    assert convert({"namespace": "n", "ok": "o"}) == {"__namespace__": "n", "ok": "o"}
    assert converter_for({"type": "object", "properties": {"ok": {"type": "string"}}}) is None


def test_escaped_names_reach_rules() -> None:
    from kplane.crd.validation import SchemaValidator

    validator = SchemaValidator({"type": "object", "properties": {"ref": {
        "type": "object", "properties": {"namespace": {"type": "string"}},
        "x-kubernetes-validations": [{"rule": "self.__namespace__ == 'a'", "message": "m"}]}}})
    assert validator.validate({"ref": {"namespace": "a"}}) == []
    assert [c.message for c in validator.validate({"ref": {"namespace": "b"}})] == [
        'Invalid value: "object": m']
