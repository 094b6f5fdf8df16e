"""CEL validation rules (``x-kubernetes-validations``): compiling once, evaluating per write.

A CRD's rules are compiled when the CRD is written (a rule that does not compile makes the
CRD invalid, with the compiler's message) and evaluated on every write of a custom resource
against the value at the rule's schema node, bound as ``self`` (and as ``oldSelf`` on
updates, for transition rules). The runtime is Google's C++ CEL (cel-expr-python); the
Kubernetes function library is declared in :mod:`kplane.crd.cel_library`.

Property names are exposed to CEL the way upstream escapes them: a name that is a CEL
reserved word becomes ``__<name>__``, and ``__``, ``.``, ``-``, ``/`` become
``__underscores__``, ``__dot__``, ``__dash__``, ``__slash__``. Objects whose schema needs no
escaping are handed to the runtime as they are, which keeps the common case cheap.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from cel_expr_python import cel  # type: ignore[import-untyped]
from cel_expr_python.ext import ext_optional  # type: ignore[import-untyped]

from kplane.apimachinery.errors import Cause, field_invalid, field_not_supported, field_required
from kplane.crd.cel_library import kubernetes_functions

_RESERVED = frozenset({
    "true", "false", "null", "in", "as", "break", "const", "continue", "else", "for",
    "function", "if", "import", "let", "loop", "package", "namespace", "return", "var",
    "void", "while",
})
_PLAIN_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_ESCAPABLE_NAME = re.compile(r"[a-zA-Z_.\-/][a-zA-Z0-9_.\-/]*")
# oldSelf used as an identifier, not inside a string literal: a cheap, conservative scan.
_STRING_LITERAL = re.compile(r"""(?s)[rR]?('''.*?'''|\"\"\".*?\"\"\"|'(?:\\.|[^'\\])*'"""
                             r"""|"(?:\\.|[^"\\])*")""")
_OLD_SELF = re.compile(r"\boldSelf\b")

VALID_REASONS = ("FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired",
                 "FieldValueDuplicate")

Converter = Callable[[Any], Any]


def escape_property_name(name: str) -> str | None:
    """The identifier CEL sees for a property, or None when the property is not accessible."""
    if name in _RESERVED:
        return f"__{name}__"
    if _PLAIN_NAME.fullmatch(name) and "__" not in name:
        return name
    if not _ESCAPABLE_NAME.fullmatch(name):
        return None
    return (name.replace("__", "__underscores__").replace(".", "__dot__")
            .replace("-", "__dash__").replace("/", "__slash__"))


@cache
def _environment() -> cel.Env:
    return cel.NewEnv(
        variables={"self": cel.Type.DYN, "oldSelf": cel.Type.DYN},
        extensions=[ext_optional.ExtOptional()],
        functions=kubernetes_functions(),
    )


def references_old_self(rule: str) -> bool:
    """Whether a rule is a transition rule (mentions ``oldSelf`` outside string literals)."""
    return bool(_OLD_SELF.search(_STRING_LITERAL.sub("''", rule)))


class CelCompileError(ValueError):
    """A rule or message expression the CEL compiler refused; ``field`` says which."""

    def __init__(self, message: str, *, field: str = "rule") -> None:
        super().__init__(message)
        self.field = field


def _compile(source: str, *, field: str = "rule") -> cel.Expression:
    try:
        return _environment().compile(source)
    except RuntimeError as exc:
        raise CelCompileError(_compiler_message(str(exc)), field=field) from exc


def _compiler_message(text: str) -> str:
    # The runtime prefixes its status code ("INVALID_ARGUMENT: "); upstream shows "ERROR: ...".
    for prefix in ("INVALID_ARGUMENT: ", "ALREADY_EXISTS: ", "UNKNOWN: "):
        if text.startswith(prefix):
            text = text[len(prefix):]
    return text.split(" [INVALID_ARGUMENT]")[0].strip()


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    """The result of one rule against one value: passed, or the cause to report."""

    passed: bool
    message: str = ""
    reason: str = "FieldValueInvalid"
    field_path: str = ""
    evaluation_error: bool = False


class CelProgram:
    """One compiled ``x-kubernetes-validations`` entry."""

    __slots__ = ("_expression", "_message_expression", "field_path", "message",
                 "optional_old_self", "reason", "rule", "transition")

    def __init__(self, entry: Mapping[str, Any]) -> None:
        self.rule = str(entry.get("rule", ""))
        self.message = str(entry.get("message") or "").strip()
        self.reason = str(entry.get("reason") or "FieldValueInvalid")
        self.field_path = str(entry.get("fieldPath") or "")
        self.optional_old_self = bool(entry.get("optionalOldSelf"))
        self.transition = references_old_self(self.rule)
        self._expression = _compile(self.rule)
        source = entry.get("messageExpression")
        self._message_expression = (
            _compile(str(source), field="messageExpression") if source else None)

    def default_message(self) -> str:
        return self.message or f"failed rule: {self.rule.strip()}"

    def evaluate(self, value: Any, old: Any = None, *, has_old: bool = False) -> RuleOutcome:
        """Run the rule with ``self`` (and ``oldSelf`` when there is an old value)."""
        data = {"self": value, "oldSelf": old if has_old else None}
        try:
            plain = self._expression.eval(data=data).plain_value()
        except Exception as error:  # the evaluator gave up: a limit, or a library function
            return RuleOutcome(passed=False, evaluation_error=True,
                               message=_abandoned_message(error, self.rule))
        if plain is True:
            return RuleOutcome(passed=True)
        if plain is False:
            return RuleOutcome(passed=False, message=self._failure_message(data),
                               reason=self.reason, field_path=self.field_path)
        detail = plain if isinstance(plain, str) and plain else "rule did not evaluate to bool"
        return RuleOutcome(passed=False, evaluation_error=True,
                           message=f"{_runtime_message(detail)} evaluating rule: {self.rule}")

    def _failure_message(self, data: Mapping[str, Any]) -> str:
        if self._message_expression is None:
            return self.default_message()
        try:
            produced = self._message_expression.eval(data=data).plain_value()
        except Exception:  # upstream falls back to the static message here too
            return self.default_message()
        # Upstream falls back to the static message when the expression misbehaves.
        if isinstance(produced, str) and produced.strip() and "\n" not in produced:
            return produced
        return self.default_message()


# Upstream's words when validation runs out of its cost budget (one rule, or a request).
BUDGET_EXHAUSTED = ("validation failed due to running out of cost budget, no further "
                    "validation rules will be run")


def _abandoned_message(error: Exception, rule: str) -> str:
    text = str(error)
    if "budget" in text:
        return BUDGET_EXHAUSTED
    text = text.removeprefix("INTERNAL: ")
    return f"{_runtime_message(text)} evaluating rule: {rule}"


def _runtime_message(text: str) -> str:
    for prefix in ("INVALID_ARGUMENT: ", "NOT_FOUND: ", "UNKNOWN: "):
        if text.startswith(prefix):
            text = text[len(prefix):]
    if text.startswith("Key not found in map : "):
        return "no such key: " + text.removeprefix("Key not found in map : ").strip('"')
    return text


def compile_rule(entry: Mapping[str, Any], *, path: str,
                 correlatable: bool = True) -> CelProgram | list[Cause]:
    """Compile one validations entry; causes (at ``path``, the entry's path) if it is bad."""
    rule = entry.get("rule")
    if not isinstance(rule, str) or not rule.strip():
        return [field_required(f"{path}.rule")]
    causes: list[Cause] = []
    reason = entry.get("reason")
    if reason is not None and reason not in VALID_REASONS:
        causes.append(field_not_supported(f"{path}.reason", reason, list(VALID_REASONS)))
    message = entry.get("message")
    if isinstance(message, str) and ((not message.strip() and message) or "\n" in message):
        causes.append(field_invalid(f"{path}.message", message,
                                    "message must be non-empty and may not contain line breaks"))
    try:
        program = CelProgram(entry)
    except CelCompileError as exc:
        shown = rule if exc.field == "rule" else entry.get("messageExpression")
        prefix = "" if exc.field == "rule" else "messageExpression "
        causes.append(field_invalid(f"{path}.{exc.field}", shown,
                                    f"{prefix}compilation failed: {exc}"))
        return causes
    if program.transition and not correlatable:
        causes.append(field_invalid(
            f"{path}.rule", rule,
            "oldSelf cannot be used on the uncorrelatable portion of the schema within "
            f"{path.rsplit('.x-kubernetes-validations', 1)[0]}"))
    if entry.get("optionalOldSelf") and not program.transition:
        causes.append(field_invalid(f"{path}.optionalOldSelf", True,
                                    "may not be set if oldSelf is not used in rule"))
    return causes or program


# -- exposing values to CEL --------------------------------------------------------------


def _needs_escaping(schema: Mapping[str, Any]) -> bool:
    props = schema.get("properties")
    if isinstance(props, Mapping):
        for name, child in props.items():
            if escape_property_name(name) != name:
                return True
            if isinstance(child, Mapping) and _needs_escaping(child):
                return True
    for key in ("items", "additionalProperties"):
        child = schema.get(key)
        if isinstance(child, Mapping) and _needs_escaping(child):
            return True
    return False


def converter_for(schema: Mapping[str, Any]) -> Converter | None:
    """A function turning a value into what CEL sees, or None when no change is needed."""
    if not _needs_escaping(schema):
        return None
    return _build_converter(schema)


def _build_converter(schema: Mapping[str, Any]) -> Converter:
    props = schema.get("properties")
    items = schema.get("items")
    additional = schema.get("additionalProperties")
    if isinstance(props, Mapping):
        renames = {name: escape_property_name(name) for name in props}
        children = {name: _build_converter(child) for name, child in props.items()
                    if isinstance(child, Mapping) and _needs_escaping(child)}

        def convert_object(value: Any) -> Any:
            if not isinstance(value, Mapping):
                return value
            out: dict[str, Any] = {}
            for key, child_value in value.items():
                target = renames.get(key, key)
                if target is None:
                    continue
                convert = children.get(key)
                out[target] = convert(child_value) if convert else child_value
            return out
        return convert_object
    if isinstance(items, Mapping):
        convert_item = _build_converter(items)
        return lambda value: ([convert_item(v) for v in value] if isinstance(value, list)
                              else value)
    if isinstance(additional, Mapping):
        convert_value = _build_converter(additional)
        return lambda value: ({k: convert_value(v) for k, v in value.items()}
                              if isinstance(value, Mapping) else value)
    return lambda value: value
