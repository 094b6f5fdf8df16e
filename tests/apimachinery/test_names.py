from __future__ import annotations

import pytest

from kplane.apimachinery import names

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
NAME_PART_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used "
    "for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)


@pytest.mark.parametrize("value", ["a", "example.com", "a-b.c-d", "0", "x" * 253])
def test_dns1123_subdomain_accepts(value: str) -> None:
    assert names.is_dns1123_subdomain(value) == []


@pytest.mark.parametrize("value", ["", "A", "-a", "a-", "a..b", "a_b", ".a", "a.", "a\n", "é"])
def test_dns1123_subdomain_rejects_with_upstream_message(value: str) -> None:
    assert names.is_dns1123_subdomain(value) == [SUBDOMAIN_MSG]


def test_dns1123_subdomain_too_long_reports_both_problems_in_order() -> None:
    assert names.is_dns1123_subdomain("x" * 254) == ["must be no more than 253 characters"]
    assert names.is_dns1123_subdomain("X" * 254) == [
        "must be no more than 253 characters", SUBDOMAIN_MSG,
    ]


def test_dns1123_label() -> None:
    assert names.is_dns1123_label("my-ns") == []
    assert names.is_dns1123_label("x" * 63) == []
    assert names.is_dns1123_label("x" * 64) == ["must be no more than 63 characters"]
    assert names.is_dns1123_label("a.b") == ["must not contain dots"]
    assert names.is_dns1123_label("Ab") == [LABEL_MSG]


def test_dns1035_label_must_start_with_a_letter() -> None:
    assert names.is_dns1035_label("svc-1") == []
    assert names.is_dns1035_label("1svc") == [
        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
        "an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
        "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
    ]


@pytest.mark.parametrize(
    "value", ["app", "App.Kubernetes_io-x", "example.com/name", "a/b", "k8s.io/MyName", "x" * 63]
)
def test_qualified_name_accepts(value: str) -> None:
    assert names.is_qualified_name(value) == []


def test_qualified_name_failures() -> None:
    assert names.is_qualified_name("") == ["name part must be non-empty", NAME_PART_MSG]
    assert names.is_qualified_name("app:x") == [NAME_PART_MSG]
    assert names.is_qualified_name("x" * 64) == [
        "name part must be no more than 63 characters",
    ]
    assert names.is_qualified_name("/a") == ["prefix part must be non-empty"]
    assert names.is_qualified_name("Example.com/a") == ["prefix part " + SUBDOMAIN_MSG]
    assert names.is_qualified_name("a/b/c") == [
        "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must "
        "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
        "'123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') "
        "with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
    ]


def test_label_values() -> None:
    assert names.is_valid_label_value("") == []
    assert names.is_valid_label_value("My_value-1.2") == []
    assert names.is_valid_label_value("-a") == [LABEL_VALUE_MSG]
    assert names.is_valid_label_value("a" * 64) == ["must be no more than 63 characters"]


def test_path_segment_names() -> None:
    assert names.validate_path_segment_name("system:admin") == []
    assert names.validate_path_segment_name(".") == ["may not be '.'"]
    assert names.validate_path_segment_name("..") == ["may not be '..'"]
    assert names.validate_path_segment_name("a/b%c") == [
        "may not contain '/'", "may not contain '%'",
    ]
    # A generateName is only the start of a name: "." may still grow into a fine one.
    assert names.validate_path_segment_name(".", prefix=True) == []
    assert names.validate_path_segment_name("a/", prefix=True) == ["may not contain '/'"]


def test_generate_name_prefixes_have_their_trailing_dash_masked() -> None:
    assert names.validate_dns_subdomain_name("web-", prefix=True) == []
    assert names.validate_dns_subdomain_name("web-") == [SUBDOMAIN_MSG]
    assert names.validate_dns_label_name("ns-", prefix=True) == []
    assert names.validate_dns1035_label_name("svc-", prefix=True) == []
    assert names.mask_trailing_dash("-") == "-"


def test_generate_name_shape() -> None:
    generated = names.generate_name("web-")
    assert generated.startswith("web-")
    assert len(generated) == len("web-") + 5
    assert set(generated[4:]) <= set("bcdfghjklmnpqrstvwxz2456789")

    long_base = "x" * 80
    generated = names.generate_name(long_base)
    assert generated[:58] == "x" * 58
    assert len(generated) == 63
    assert names.is_dns1123_label(generated) == []


def test_generate_name_is_random() -> None:
    assert len({names.generate_name("a-") for _ in range(50)}) > 45
