"""The naming rules of Kubernetes: DNS labels and subdomains, qualified names, label values.

Object names, namespaces, label keys and values, annotation keys and finalizers all obey
a handful of rules that upstream states in ``k8s.io/apimachinery/pkg/util/validation``.
Clients and users read the exact wording of the failures (``kubectl`` prints them), so the
checks here return upstream's messages as lists of strings, empty when the value is valid;
callers attach them to a field path. ``generate_name`` builds names for ``generateName``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

from kplane.apimachinery.random_ids import random_chars

NameValidator = Callable[[str], list[str]]
"""Checks one object name; returns upstream's failure messages, empty when valid."""

DNS1123_LABEL_MAX_LENGTH = 63
DNS1123_SUBDOMAIN_MAX_LENGTH = 253
DNS1035_LABEL_MAX_LENGTH = 63
QUALIFIED_NAME_MAX_LENGTH = 63
LABEL_VALUE_MAX_LENGTH = 63

_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE_FMT = "(" + _QUALIFIED_NAME_FMT + ")?"

# Compiled once; ``fullmatch`` because Python's ``$`` would also accept a trailing newline.
_DNS1123_LABEL = re.compile(_DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN = re.compile(_DNS1123_SUBDOMAIN_FMT)
_DNS1035_LABEL = re.compile(_DNS1035_LABEL_FMT)
_QUALIFIED_NAME = re.compile(_QUALIFIED_NAME_FMT)
_LABEL_VALUE = re.compile(_LABEL_VALUE_FMT)

_DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)
_DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character"
)
_DNS1035_LABEL_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
    "an alphabetic character, and end with an alphanumeric character"
)
_QUALIFIED_NAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
    "an alphanumeric character"
)
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
    "or '.', and must start and end with an alphanumeric character"
)

# Upstream leaves out vowels (no accidental words) and look-alikes such as 0/o, 1/l, 3/e.
GENERATE_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
GENERATE_NAME_RANDOM_LENGTH = 5
GENERATE_NAME_MAX_BASE_LENGTH = 58  # 63 - 5: a generated name still fits a DNS label


def max_len_error(length: int) -> str:
    return f"must be no more than {length} characters"


def empty_error() -> str:
    return "must be non-empty"


def regex_error(message: str, regex: str, *examples: str) -> str:
    """Upstream's wording of a regex failure, examples included (its double spaces too)."""
    if not examples:
        return f"{message} (regex used for validation is '{regex}')"
    shown = " or ".join(f"'{example}', " for example in examples)
    return f"{message} (e.g. {shown}regex used for validation is '{regex}')"


def _byte_length(value: str) -> int:
    # Upstream limits count bytes of UTF-8, not characters.
    return len(value) if value.isascii() else len(value.encode())


def is_dns1123_label(value: str) -> list[str]:
    """A lowercase RFC 1123 label (namespace names, many other names): at most 63 chars."""
    errors: list[str] = []
    if _byte_length(value) > DNS1123_LABEL_MAX_LENGTH:
        errors.append(max_len_error(DNS1123_LABEL_MAX_LENGTH))
    if not _DNS1123_LABEL.fullmatch(value):
        if _DNS1123_SUBDOMAIN.fullmatch(value):
            # A valid subdomain that is no label can only be at fault for its dots.
            errors.append("must not contain dots")
        else:
            errors.append(
                regex_error(_DNS1123_LABEL_MSG, _DNS1123_LABEL_FMT, "my-name", "123-abc")
            )
    return errors


def is_dns1123_subdomain(value: str) -> list[str]:
    """A lowercase RFC 1123 subdomain (most object names): at most 253 chars."""
    errors: list[str] = []
    if _byte_length(value) > DNS1123_SUBDOMAIN_MAX_LENGTH:
        errors.append(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH))
    if not _DNS1123_SUBDOMAIN.fullmatch(value):
        errors.append(regex_error(_DNS1123_SUBDOMAIN_MSG, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errors


def is_dns1035_label(value: str) -> list[str]:
    """An RFC 1035 label (service names): like a DNS-1123 label but starting with a letter."""
    errors: list[str] = []
    if _byte_length(value) > DNS1035_LABEL_MAX_LENGTH:
        errors.append(max_len_error(DNS1035_LABEL_MAX_LENGTH))
    if not _DNS1035_LABEL.fullmatch(value):
        errors.append(regex_error(_DNS1035_LABEL_MSG, _DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errors


def _qualified_name_part_error() -> str:
    return regex_error(_QUALIFIED_NAME_MSG, _QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")


def is_qualified_name(value: str) -> list[str]:
    """A label key, annotation key or finalizer: ``[dns-subdomain/]name``, name <= 63 chars."""
    if len(value) > _CACHED_KEY_LENGTH:
        # Too long to be valid; not worth remembering (and a cache of hostile keys would
        # hold whole request bodies).
        return _check_qualified_name(value)
    return list(_qualified_name_problems(value))


# A DNS subdomain prefix, "/", and a 63-character name: anything longer is invalid.
_CACHED_KEY_LENGTH = 253 + 1 + 63


@functools.lru_cache(maxsize=4096)
def _qualified_name_problems(value: str) -> tuple[str, ...]:
    # Every write checks its labels, annotations and finalizers, and their keys repeat.
    return tuple(_check_qualified_name(value))


def _check_qualified_name(value: str) -> list[str]:
    parts = value.split("/")
    if len(parts) > 2:
        return [
            "a qualified name " + _qualified_name_part_error()
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    errors: list[str] = []
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            errors.append("prefix part " + empty_error())
        else:
            errors.extend("prefix part " + msg for msg in is_dns1123_subdomain(prefix))
    if not name:
        errors.append("name part " + empty_error())
    elif _byte_length(name) > QUALIFIED_NAME_MAX_LENGTH:
        errors.append("name part " + max_len_error(QUALIFIED_NAME_MAX_LENGTH))
    if not _QUALIFIED_NAME.fullmatch(name):
        errors.append("name part " + _qualified_name_part_error())
    return errors


def is_valid_label_value(value: str) -> list[str]:
    """A label value: empty, or up to 63 chars of ``[-A-Za-z0-9_.]`` with alphanumeric ends."""
    errors: list[str] = []
    if _byte_length(value) > LABEL_VALUE_MAX_LENGTH:
        errors.append(max_len_error(LABEL_VALUE_MAX_LENGTH))
    if not _LABEL_VALUE.fullmatch(value):
        errors.append(
            regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345")
        )
    return errors


_PATH_SEGMENT_FORBIDDEN_NAMES = (".", "..")
_PATH_SEGMENT_FORBIDDEN_CONTENT = ("/", "%")


def validate_path_segment_name(name: str, prefix: bool = False) -> list[str]:
    """A name that is safe as one URL path segment (RBAC kinds): not ``.``/``..``, no ``/``/``%``.

    With ``prefix`` (a generateName), the name is only a beginning, so ``.`` is fine.
    """
    if not prefix and name in _PATH_SEGMENT_FORBIDDEN_NAMES:
        return [f"may not be '{name}'"]
    return [f"may not contain '{bad}'" for bad in _PATH_SEGMENT_FORBIDDEN_CONTENT if bad in name]


def mask_trailing_dash(prefix: str) -> str:
    """Make a generateName checkable as a name: upstream swaps a trailing dash for a letter."""
    if len(prefix) > 1 and prefix.endswith("-"):
        return prefix[:-2] + "a"
    return prefix


def validate_dns_subdomain_name(name: str, prefix: bool = False) -> list[str]:
    """The name rule of most kinds (ConfigMap, Secret, ServiceAccount, CRDs...)."""
    return is_dns1123_subdomain(mask_trailing_dash(name) if prefix else name)


def validate_dns_label_name(name: str, prefix: bool = False) -> list[str]:
    """The name rule of namespaces (and of the ``metadata.namespace`` field)."""
    return is_dns1123_label(mask_trailing_dash(name) if prefix else name)


def validate_dns1035_label_name(name: str, prefix: bool = False) -> list[str]:
    """The name rule of Services."""
    return is_dns1035_label(mask_trailing_dash(name) if prefix else name)


def generate_name(base: str) -> str:
    """A fresh name for ``generateName``: the base (cut to 58 chars) and 5 random chars."""
    suffix = random_chars(GENERATE_NAME_ALPHABET, GENERATE_NAME_RANDOM_LENGTH)
    return base[:GENERATE_NAME_MAX_BASE_LENGTH] + suffix
