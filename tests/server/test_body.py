"""Decoding request bodies: JSON and YAML, and refusing hostile input with a 400."""

from __future__ import annotations

import pytest
import yaml

from kplane.apimachinery.errors import StatusError
from kplane.server import body
from kplane.server.body import MAX_DEPTH, decode_body, media_type


def bad_request(raw: bytes, content_type: str) -> str:
    with pytest.raises(StatusError) as caught:
        decode_body(raw, content_type)
    assert (caught.value.code, caught.value.reason) == (400, "BadRequest")
    return caught.value.message


def test_media_type_drops_parameters_and_case() -> None:
    assert media_type("Application/JSON; charset=utf-8") == "application/json"
    assert media_type("") == ""


def test_json_object() -> None:
    assert decode_body(b'{"a": [1, 2.5, null, true], "b": "\\u00e9"}', "application/json") == {
        "a": [1, 2.5, None, True], "b": "\u00e9"}


def test_json_is_the_default_for_an_unknown_content_type() -> None:
    assert decode_body(b"[1]", "application/json-patch+json") == [1]


def test_yaml_document() -> None:
    raw = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  k: 'v'\n"
    assert decode_body(raw, "application/yaml") == {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"k": "v"}}


def test_json_sent_as_yaml_is_read_as_json() -> None:
    assert decode_body(b'{"a": 1}', "application/apply-patch+yaml") == {"a": 1}


def test_yaml_flow_mapping_that_is_not_json_still_parses() -> None:
    assert decode_body(b"{a: 1, b: [x, y]}", "application/yaml") == {"a": 1, "b": ["x", "y"]}


@pytest.mark.parametrize("raw", [b"", b"   \n\t"])
@pytest.mark.parametrize("content_type", ["application/json", "application/yaml"])
def test_empty_body(raw: bytes, content_type: str) -> None:
    assert bad_request(raw, content_type) == "the request body is empty"


def test_invalid_json() -> None:
    assert bad_request(b'{"a": }', "application/json").startswith(
        "the request body is not valid JSON: ")


def test_invalid_utf8_in_json() -> None:
    assert bad_request(b'{"a": "\xff"}', "application/json").startswith(
        "the request body is not valid JSON: ")


def test_invalid_utf8_in_yaml() -> None:
    assert bad_request(b"a: \xff\xfe", "application/yaml") == "the request body is not valid UTF-8"


def test_invalid_yaml() -> None:
    assert bad_request(b"a: [1, 2\nb: :", "application/yaml").startswith(
        "the request body is not valid YAML: ")


def test_deeply_nested_json_is_refused_without_crashing() -> None:
    raw = b"[" * 10_000 + b"]" * 10_000
    assert bad_request(raw, "application/json").startswith("the request body is not valid JSON")


def test_json_nesting_limit() -> None:
    ok = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert decode_body(ok, "application/json") is not None
    too_deep = b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1)
    assert bad_request(too_deep, "application/json") == (
        f"the request body is nested more than {MAX_DEPTH} levels deep")


def test_deeply_nested_yaml_is_refused_without_crashing() -> None:
    raw = b"[" * 10_000 + b"]" * 10_000
    assert bad_request(raw, "application/yaml")
    block = "".join("  " * i + "a:\n" for i in range(5_000)).encode()
    assert bad_request(block, "application/yaml")


def test_yaml_nesting_limit() -> None:
    too_deep = "".join("  " * i + "a:\n" for i in range(MAX_DEPTH + 1)).encode()
    assert bad_request(too_deep, "application/yaml") == (
        f"the request body is nested more than {MAX_DEPTH} levels deep")


def test_yaml_alias_bomb_is_refused() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for index in range(1, 10):
        previous, name = chr(ord("a") + index - 1), chr(ord("a") + index)
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    message = bad_request("\n".join(lines).encode(), "application/yaml")
    assert message.startswith("YAML aliases are not allowed in request bodies")


def test_a_single_yaml_alias_is_refused() -> None:
    assert bad_request(b"a: &x 1\nb: *x\n", "application/yaml").startswith(
        "YAML aliases are not allowed")


def test_yaml_non_string_keys_become_strings() -> None:
    raw = b"1: one\n2.5: two\nnull: three\nfalse: four\n"
    assert decode_body(raw, "application/yaml") == {
        "1": "one", "2.5": "two", "null": "three", "false": "four"}


def test_yaml_dates_stay_the_strings_the_client_wrote() -> None:
    raw = (b"day: 2024-01-02\nwhen: 2024-01-02T03:04:05Z\n"
           b"spaced: 2001-12-14 21:59:43.10 -5\n2024-01-02: key\n")
    assert decode_body(raw, "application/yaml") == {
        "day": "2024-01-02", "when": "2024-01-02T03:04:05Z",
        "spaced": "2001-12-14 21:59:43.10 -5", "2024-01-02": "key"}


def test_explicitly_tagged_yaml_timestamp_becomes_an_rfc3339_string() -> None:
    assert decode_body(b"t: !!timestamp 2024-01-02T03:04:05Z\n", "application/yaml") == {
        "t": "2024-01-02T03:04:05+00:00"}


def test_yaml_values_json_cannot_hold_are_400() -> None:
    assert bad_request(b"a: !!binary aGVsbG8=\n", "application/yaml").startswith(
        "the request body cannot be represented as JSON")


def test_yaml_multiple_documents_are_400() -> None:
    assert bad_request(b"a: 1\n---\nb: 2\n", "application/yaml").startswith(
        "the request body is not valid YAML")


@pytest.mark.parametrize("raw", [
    b"metadata: {name: x, generation: .inf}\n", b"a: -.Inf\n", b"a: .NaN\n", b"a: .nan\n",
    b"a: !!float .inf\n", b"a: 1.0e+999\n", b"a: [1.5, {b: .INF}]\n", b".inf: key\n",
    b'{"a": .inf}',
])
def test_yaml_infinity_and_nan_are_refused_as_json_refuses_them(raw: bytes) -> None:
    message = bad_request(raw, "application/yaml")
    assert message.startswith("the request body cannot be represented as JSON: ")
    assert "is not a finite number; JSON has no Infinity or NaN" in message


def test_the_non_finite_number_is_located() -> None:
    assert bad_request(b"metadata:\n  generation: .inf\n", "application/yaml") == (
        "the request body cannot be represented as JSON: '.inf' (line 2, column 15) is not "
        "a finite number; JSON has no Infinity or NaN")


def test_json_infinity_stays_refused() -> None:
    for raw in (b'{"a": Infinity}', b'{"a": NaN}', b'{"a": 1e999}'):
        assert bad_request(raw, "application/json").startswith(
            "the request body is not valid JSON")


def test_finite_yaml_floats_and_float_looking_strings_are_kept() -> None:
    assert decode_body(b"a: 1.5\nb: -2.0e+3\nc: 1e999\nd: '.inf'\ne: inf\n",
                       "application/yaml") == {
        "a": 1.5, "b": -2000.0, "c": "1e999", "d": ".inf", "e": "inf"}


def test_an_anchor_without_an_alias_is_harmless() -> None:
    assert decode_body(b"a: &x {k: v}\nb: 2\n", "application/yaml") == {"a": {"k": "v"}, "b": 2}


@pytest.mark.parametrize("raw", [
    b"a: &a [*a]\n",
    b"base: &b {k: v}\nmetadata: {<<: *b, name: merge}\n",
    b"a: &x 1\nb: [*x]\n",
])
def test_recursive_merge_and_scalar_aliases_are_refused(raw: bytes) -> None:
    assert bad_request(raw, "application/yaml").startswith(
        "YAML aliases are not allowed in request bodies (the node anchored at line 1, ")


def test_an_inline_merge_key_without_an_alias_still_merges() -> None:
    assert decode_body(b"m: {<<: {a: 1}, b: 2}\n", "application/yaml") == {"m": {"a": 1, "b": 2}}


def test_python_tags_are_refused() -> None:
    assert bad_request(b"a: !!python/object/apply:os.system [id]\n",
                       "application/yaml").startswith("the request body is not valid YAML: ")


@pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML built without libyaml")
def test_yaml_is_parsed_by_libyaml_when_pyyaml_has_it() -> None:
    # PyYAML's own parser is ~15x slower on a 3 MiB body, all of it on the event loop.
    assert issubclass(body._Loader, yaml.CSafeLoader)
