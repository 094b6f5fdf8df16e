"""Kubernetes' CEL extension functions, declared for the cel-expr-python runtime.

CRD validation rules are written against the function set kube-apiserver offers: cel-go's
``strings`` extension (``lowerAscii``, ``split``, ``indexOf``...) plus Kubernetes' own
libraries (lists, regex, URLs, IPs/CIDRs, quantities). The C++ runtime's own strings
extension cannot be combined with the list ``indexOf`` Kubernetes adds (the runtime refuses
a function declared twice), so every function lives here, in one declaration per name.

Values stay plain: a URL, an IP, a CIDR and a quantity are carried as their strings, and
their member functions parse on use. Rules therefore see the same results as upstream,
without opaque CEL types the Python bindings cannot build.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any
from urllib.parse import urlsplit

from cel_expr_python import cel  # type: ignore[import-untyped]

from kplane.apimachinery.regex import cached_pattern

T = cel.Type

# Overloads are dispatched on runtime kinds (every list is one kind), so a list function has
# one overload over list(dyn), and only the kind of a second argument can tell overloads apart.
_ELEMENT_TYPES: tuple[tuple[str, Any], ...] = (
    ("int", T.INT), ("double", T.DOUBLE), ("string", T.STRING), ("bool", T.BOOL),
)
_ANY_LIST = T.List(T.DYN)


class CelFunctionError(ValueError):
    """A library function was called with an argument it cannot accept."""


def _overload_id(name: str, params: Sequence[Any], kind: str) -> str:
    signature = "_".join(re.sub(r"\W", "", str(p.name()).lower()) for p in params)
    return f"{name}_{signature}_{len(params)}_{kind}"


def _member(name: str, ret: Any, params: Sequence[Any], impl: Callable[..., Any]) -> Any:
    return cel.Overload(_overload_id(name, params, "m"), ret, list(params), is_member=True,
                        impl=impl)


def _global(name: str, ret: Any, params: Sequence[Any], impl: Callable[..., Any]) -> Any:
    return cel.Overload(_overload_id(name, params, "g"), ret, list(params), is_member=False,
                        impl=impl)


# -- strings (cel-go ext.Strings, version 2 as Kubernetes enables it) -----------------------

def _char_at(s: str, i: int) -> str:
    if i < 0 or i > len(s):
        raise CelFunctionError(f"index out of range: {i}")
    return s[i:i + 1]


def _index_of(s: str, sub: str, start: int = 0) -> int:
    if start < 0 or start > len(s):
        raise CelFunctionError(f"index out of range: {start}")
    return s.find(sub, start)


def _last_index_of(s: str, sub: str, end: int | None = None) -> int:
    if end is None:
        return s.rfind(sub)
    if end < 0 or end > len(s):
        raise CelFunctionError(f"index out of range: {end}")
    return s.rfind(sub, 0, end + len(sub))


def _substring(s: str, start: int, end: int | None = None) -> str:
    stop = len(s) if end is None else end
    if start < 0 or start > len(s) or stop < start or stop > len(s):
        raise CelFunctionError(f"substring out of range: [{start}, {stop})")
    return s[start:stop]


def _replace(s: str, old: str, new: str, count: int = -1) -> str:
    return s.replace(old, new, count)


def _split(s: str, sep: str, limit: int = -1) -> list[str]:
    if limit == 0:
        return []
    if sep == "":
        chars = list(s)
        if 0 < limit < len(chars):
            return [*chars[:limit - 1], "".join(chars[limit - 1:])]
        return chars
    return s.split(sep, limit - 1 if limit > 0 else -1)


def _join(items: Sequence[Any], sep: str = "") -> str:
    return sep.join(str(x) for x in items)


def _ascii_lower(s: str) -> str:
    return "".join(c.lower() if c.isascii() else c for c in s)


def _ascii_upper(s: str) -> str:
    return "".join(c.upper() if c.isascii() else c for c in s)


def _quote(s: str) -> str:
    escaped = s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped.replace(chr(9), chr(92) + "t").replace(chr(13), chr(92) + "r")}"'


def _string_functions() -> list[Any]:
    S, N = T.STRING, T.INT
    return [
        cel.FunctionDecl("charAt", [_member("charAt", S, [S, N], _char_at)]),
        cel.FunctionDecl("indexOf", [
            _member("indexOf", N, [S, S], _index_of),
            _member("indexOf", N, [S, S, N], _index_of),
            *(_member("indexOf", N, [_ANY_LIST, t], _list_index_of) for _, t in _ELEMENT_TYPES),
        ]),
        cel.FunctionDecl("lastIndexOf", [
            _member("lastIndexOf", N, [S, S], _last_index_of),
            _member("lastIndexOf", N, [S, S, N], _last_index_of),
            *(_member("lastIndexOf", N, [_ANY_LIST, t], _list_last_index_of)
              for _, t in _ELEMENT_TYPES),
        ]),
        cel.FunctionDecl("lowerAscii", [_member("lowerAscii", S, [S], _ascii_lower)]),
        cel.FunctionDecl("upperAscii", [_member("upperAscii", S, [S], _ascii_upper)]),
        cel.FunctionDecl("replace", [
            _member("replace", S, [S, S, S], _replace),
            _member("replace", S, [S, S, S, N], _replace),
        ]),
        cel.FunctionDecl("split", [
            _member("split", T.List(S), [S, S], _split),
            _member("split", T.List(S), [S, S, N], _split),
        ]),
        cel.FunctionDecl("substring", [
            _member("substring", S, [S, N], _substring),
            _member("substring", S, [S, N, N], _substring),
        ]),
        cel.FunctionDecl("trim", [_member("trim", S, [S], lambda s: s.strip())]),
        cel.FunctionDecl("reverse", [_member("reverse", S, [S], lambda s: s[::-1])]),
        cel.FunctionDecl("join", [
            _member("join", S, [T.List(S)], _join),
            _member("join", S, [T.List(S), S], _join),
        ]),
        cel.FunctionDecl("quote", [_global("strings.quote", S, [S], _quote)]),
    ]


# -- lists (Kubernetes' lists library) -------------------------------------------------------

def _list_index_of(items: Sequence[Any], value: Any) -> int:
    for i, item in enumerate(items):
        if item == value:
            return i
    return -1


def _list_last_index_of(items: Sequence[Any], value: Any) -> int:
    for i in range(len(items) - 1, -1, -1):
        if items[i] == value:
            return i
    return -1


def _is_sorted(items: Sequence[Any]) -> bool:
    return all(items[i] <= items[i + 1] for i in range(len(items) - 1))


def _list_min(items: Sequence[Any]) -> Any:
    if not items:
        raise CelFunctionError("min called on empty list")
    return min(items)


def _list_max(items: Sequence[Any]) -> Any:
    if not items:
        raise CelFunctionError("max called on empty list")
    return max(items)


def _list_sum(items: Sequence[Any]) -> Any:
    total: Any = 0
    for item in items:
        total = total + item
    return total


def _list_functions() -> list[Any]:
    return [
        cel.FunctionDecl("isSorted", [_member("isSorted", T.BOOL, [_ANY_LIST], _is_sorted)]),
        cel.FunctionDecl("sum", [_member("sum", T.DYN, [_ANY_LIST], _list_sum)]),
        cel.FunctionDecl("min", [_member("min", T.DYN, [_ANY_LIST], _list_min)]),
        cel.FunctionDecl("max", [_member("max", T.DYN, [_ANY_LIST], _list_max)]),
    ]


# -- regex -----------------------------------------------------------------------------------

def _find(s: str, pattern: str) -> str:
    match = cached_pattern(pattern).search(s)
    return match.group(0) if match else ""


def _find_all(s: str, pattern: str, limit: int = -1) -> list[str]:
    found: list[str] = []
    if limit == 0:
        return found
    for match in cached_pattern(pattern).finditer(s):
        found.append(match.group(0))
        if len(found) == limit:
            break
    return found


def _regex_functions() -> list[Any]:
    S = T.STRING
    return [
        cel.FunctionDecl("find", [_member("find", S, [S, S], _find)]),
        cel.FunctionDecl("findAll", [
            _member("findAll", T.List(S), [S, S], _find_all),
            _member("findAll", T.List(S), [S, S, T.INT], _find_all),
        ]),
    ]


# -- URLs ------------------------------------------------------------------------------------

def _parse_url(s: str) -> Any:
    # Go's url.ParseRequestURI: an absolute URL or an absolute path, nothing relative.
    try:
        parts = urlsplit(s)
        _ = parts.port
    except ValueError as exc:
        raise CelFunctionError(f"URL parse error during conversion from string: {exc}") from exc
    if not (parts.scheme or s.startswith("/")) or (parts.scheme and not parts.netloc
                                                   and not parts.path.startswith("/")):
        raise CelFunctionError(f"URL parse error during conversion from string: {s}")
    return parts


def _is_url(s: str) -> bool:
    try:
        _parse_url(s)
    except CelFunctionError:
        return False
    return True


def _url(s: str) -> str:
    _parse_url(s)
    return s


def _url_host(s: str) -> str:
    return str(_parse_url(s).netloc.rsplit("@", 1)[-1])


def _url_hostname(s: str) -> str:
    host = _url_host(s)
    if host.startswith("["):
        return host[1:host.find("]")]
    return host.rsplit(":", 1)[0] if ":" in host else host


def _url_port(s: str) -> str:
    host = _url_host(s)
    tail = host.rsplit("]", 1)[-1]
    return tail.rsplit(":", 1)[1] if ":" in tail else ""


def _url_functions() -> list[Any]:
    S = T.STRING
    return [
        cel.FunctionDecl("isURL", [_global("isURL", T.BOOL, [S], _is_url)]),
        cel.FunctionDecl("url", [_global("url", S, [S], _url)]),
        cel.FunctionDecl("getScheme", [_member("getScheme", S, [S],
                                               lambda s: _parse_url(s).scheme)]),
        cel.FunctionDecl("getHost", [_member("getHost", S, [S], _url_host)]),
        cel.FunctionDecl("getHostname", [_member("getHostname", S, [S], _url_hostname)]),
        cel.FunctionDecl("getPort", [_member("getPort", S, [S], _url_port)]),
        cel.FunctionDecl("getEscapedPath", [_member("getEscapedPath", S, [S],
                                                    lambda s: _parse_url(s).path)]),
        cel.FunctionDecl("getQuery", [_member("getQuery", T.Map(S, T.List(S)), [S],
                                              _url_query)]),
    ]


def _url_query(s: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for pair in _parse_url(s).query.split("&"):
        if pair:
            key, _, value = pair.partition("=")
            out.setdefault(key, []).append(value)
    return out


# -- IPs and CIDRs ---------------------------------------------------------------------------

def _strict_ip(s: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    # Kubernetes refuses zones and IPv4-mapped IPv6 forms; Python refuses leading zeros too.
    if "%" in s:
        raise CelFunctionError(f"IP address with zone value is not allowed: {s}")
    try:
        addr = ipaddress.ip_address(s)
    except ValueError as exc:
        raise CelFunctionError(f"IP Address {s!r} parse error during conversion from string: "
                               f"{exc}") from exc
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        raise CelFunctionError(f"IPv4-mapped IPv6 address is not allowed: {s}")
    return addr


def _strict_cidr(s: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if "/" not in s:
        raise CelFunctionError(f"network address parse error during conversion from string: {s}")
    address, _, _prefix = s.partition("/")
    _strict_ip(address)
    try:
        return ipaddress.ip_network(s, strict=False)
    except ValueError as exc:
        raise CelFunctionError(f"network address parse error during conversion from string: "
                               f"{exc}") from exc


def _succeeds(parse: Callable[[str], Any]) -> Callable[[str], bool]:
    def check(s: str) -> bool:
        try:
            parse(s)
        except CelFunctionError:
            return False
        return True
    return check


def _ip_functions() -> list[Any]:
    S, B = T.STRING, T.BOOL
    return [
        cel.FunctionDecl("isIP", [_global("isIP", B, [S], _succeeds(_strict_ip))]),
        cel.FunctionDecl("ip", [_global("ip", S, [S], lambda s: str(_strict_ip(s)) and s)]),
        cel.FunctionDecl("isCIDR", [_global("isCIDR", B, [S], _succeeds(_strict_cidr))]),
        cel.FunctionDecl("cidr", [_global("cidr", S, [S], lambda s: str(_strict_cidr(s)) and s)]),
        cel.FunctionDecl("family", [_member("family", T.INT, [S],
                                            lambda s: _strict_ip(s).version)]),
        cel.FunctionDecl("isLoopback", [_member("isLoopback", B, [S],
                                                lambda s: _strict_ip(s).is_loopback)]),
        cel.FunctionDecl("isUnspecified", [_member("isUnspecified", B, [S],
                                                   lambda s: _strict_ip(s).is_unspecified)]),
        cel.FunctionDecl("isCanonical", [_member("isCanonical", B, [S],
                                                 lambda s: str(_strict_ip(s)) == s)]),
        cel.FunctionDecl("containsIP", [_member("containsIP", B, [S, S],
                                                lambda c, i: _strict_ip(i) in _strict_cidr(c))]),
        cel.FunctionDecl("prefixLength", [_member("prefixLength", T.INT, [S],
                                                  lambda c: _strict_cidr(c).prefixlen)]),
    ]


# -- quantities ------------------------------------------------------------------------------

_QUANTITY = re.compile(r"^([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|"
                       r"[eE][+-]?[0-9]+)?$")
_SUFFIX: dict[str, Fraction] = {
    "": Fraction(1), "n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000),
    "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12),
    "P": Fraction(10**15), "E": Fraction(10**18), "Ki": Fraction(2**10), "Mi": Fraction(2**20),
    "Gi": Fraction(2**30), "Ti": Fraction(2**40), "Pi": Fraction(2**50), "Ei": Fraction(2**60),
}


def quantity_value(s: str) -> Fraction:
    """The exact value of a Kubernetes quantity string (``500m``, ``1Gi``, ``1e3``)."""
    match = _QUANTITY.match(s)
    if not match:
        raise CelFunctionError("quantities must match the regular expression "
                               "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
    try:
        number = Fraction(Decimal(match.group(1)))
    except InvalidOperation as exc:
        raise CelFunctionError(f"invalid quantity {s!r}") from exc
    suffix = match.group(2) or ""
    if suffix[:1] in ("e", "E"):
        return number * Fraction(10) ** int(suffix[1:])
    return number * _SUFFIX[suffix]


def _quantity_as_integer(s: str) -> int:
    value = quantity_value(s)
    if value.denominator != 1 or abs(value) >= 2**63:
        raise CelFunctionError("cannot convert value to integer")
    return int(value)


def _compare(a: Fraction, b: Fraction) -> int:
    return (a > b) - (a < b)


def _quantity_functions() -> list[Any]:
    S, B = T.STRING, T.BOOL
    q = quantity_value
    return [
        cel.FunctionDecl("isQuantity", [_global("isQuantity", B, [S], _succeeds(q))]),
        cel.FunctionDecl("quantity", [_global("quantity", S, [S], lambda s: q(s) is not None
                                              and s)]),
        cel.FunctionDecl("isInteger", [_member("isInteger", B, [S],
                                               lambda s: q(s).denominator == 1)]),
        cel.FunctionDecl("asInteger", [_member("asInteger", T.INT, [S], _quantity_as_integer)]),
        cel.FunctionDecl("asApproximateFloat", [_member("asApproximateFloat", T.DOUBLE, [S],
                                                        lambda s: float(q(s)))]),
        cel.FunctionDecl("sign", [_member("sign", T.INT, [S],
                                          lambda s: _compare(q(s), Fraction(0)))]),
        cel.FunctionDecl("isGreaterThan", [_member("isGreaterThan", B, [S, S],
                                                   lambda a, b: q(a) > q(b))]),
        cel.FunctionDecl("isLessThan", [_member("isLessThan", B, [S, S],
                                                lambda a, b: q(a) < q(b))]),
        cel.FunctionDecl("compareTo", [_member("compareTo", T.INT, [S, S],
                                               lambda a, b: _compare(q(a), q(b)))]),
    ]


def kubernetes_functions() -> list[Any]:
    """Every function a CRD validation rule may call beyond CEL's standard library."""
    return [
        *_string_functions(), *_list_functions(), *_regex_functions(), *_url_functions(),
        *_ip_functions(), *_quantity_functions(),
    ]
